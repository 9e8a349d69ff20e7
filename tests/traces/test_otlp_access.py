"""Who may send spans to /v1/traces, and to which project; what ingest writes to the audit log.

A real server (uvicorn on loopback) and real PostgreSQL; stored spans are read through SQL (the GraphQL
read side lands separately).
"""
from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import add_member, signup
from tests.traces.otlp_util import JSON, post, request, rows, span, spans_of, status, tenant


@pytest.fixture
async def teams(gql):
    return await tenant(gql, "alpha"), await tenant(gql, "beta")


async def test_credentials_scopes_and_projects(live, gql, teams, db_url):
    a, b = teams
    viewer, _ = await signup(gql, "vera")
    await add_member(gql, a.token, a.project_gid, "vera", "VIEWER")
    editor, _ = await signup(gql, "eddie")
    await add_member(gql, a.token, a.project_gid, "eddie", "EDITOR")
    body = request([span(0xA, 1, name="hello")])
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        async def refused(key, code, *, headers=None, media="application/x-protobuf"):
            payload = body if media != JSON else b'{"resourceSpans": []}'
            r = await post(c, payload, key, headers=headers, media=media)
            assert r.status_code == code, (r.status_code, r.content)
            return status(r.content, media).message, r

        message, r = await refused(None, 401)
        assert message.startswith("Send an API key of the project with the TRACES_WRITE scope")
        assert r.headers["www-authenticate"].startswith("Bearer")
        message, _ = await refused(None, 401, headers={"authorization": "Basic dXNlcjpwYXNz"})
        assert message == "The Authorization header must be `Bearer <API key>`."
        message, _ = await refused("psk_not-a-key", 401)
        assert message == "The API key is not valid or has been revoked."
        message, _ = await refused("psk_not-a-key", 401, media=JSON)  # a JSON request gets a JSON Status
        assert message == "The API key is not valid or has been revoked."
        message, _ = await refused(a.reader, 403)
        assert message == "This API key lacks the scope for this; one of: PROJECT_ADMIN, TRACES_WRITE."
        message, _ = await refused(a.key, 403, headers={"x-project-id": b.project_gid})
        assert message.startswith("This API key belongs to another project")
        message, _ = await refused(viewer, 403, headers={"x-project-id": "alpha-project"})
        assert message == "Your role in this project does not allow this; it needs EDITOR or higher."
        message, _ = await refused(editor, 400)
        assert message.startswith("Name the project to send spans to: X-Project-Id")
        message, _ = await refused(editor, 404, headers={"x-project-id": b.project_gid})
        assert message == "No project with this ID or slug."
        message, _ = await refused(editor, 404, headers={"x-project-id": "no-such-project"})

        # allowed: the key (alone, or naming its own project any way), an EDITOR naming the project
        for key, headers, trace in ((a.key, None, 1), (a.key, {"x-project-id": a.project_gid}, 2),
                                    (a.key, {"x-project-id": str(a.project_id)}, 3),
                                    (editor, {"x-project-id": "alpha-project"}, 4),
                                    (a.token, {"x-project-id": a.project_gid}, 5), (b.key, None, 6)):
            r = await post(c, request([span(trace, trace, name=f"trace {trace}")]), key, headers=headers)
            assert r.status_code == 200, (key, headers, r.content)
    assert sorted(s["name"] for s in (await spans_of(db_url, a.project_id)).values()) == [
        "trace 1", "trace 2", "trace 3", "trace 4", "trace 5"]
    assert [s["name"] for s in (await spans_of(db_url, b.project_id)).values()] == ["trace 6"]


async def test_the_audit_log_gets_a_summary_per_key_and_interval_not_an_event_per_request(live, teams, db_url):
    a, b = teams
    events = "SELECT * FROM audit_events WHERE action = 'traces.ingest' AND project_id = $1 ORDER BY created_at"
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        for i in range(5):
            bad = span(0xB, 100 + i, name="late", start_ms=10, end_ms=5)  # rejected, counted
            r = await post(c, request([span(0xB, i + 1), bad]), a.key)
            assert r.status_code == 200
        for _ in range(3):
            assert (await post(c, request([span(0xB, 50)]), a.reader)).status_code == 403
    got = await rows(db_url, events, a.project_id)
    # the first request opens an interval (PROMPTSTUDIO_INGEST_AUDIT_INTERVAL_SECONDS, 300 s) with an event;
    # the next ones are summed up in the event that closes it; a refused key likewise, as DENIED
    assert [(e["result"], e["api_key_id"] is not None) for e in got] == [("SUCCESS", True), ("DENIED", True)]
    success, denied = (json.loads(e["details"]) for e in got)
    assert (success["summary"], success["requests"], success["spans"], success["rejected"]) == (True, 1, 1, 1)
    assert success["via"] == ["otlp"]
    assert denied["requests"] == 1 and denied["error"]["code"] == "FORBIDDEN"

    async with live(ingest_audit_interval_seconds=0) as server, httpx.AsyncClient(base_url=server.url) as c:
        for i in range(3):
            assert (await post(c, request([span(0xC, i + 1)]), b.key)).status_code == 200
        assert (await post(c, request([span(0xB, 9)]), a.key)).status_code == 200
    got_b = await rows(db_url, events, b.project_id)
    assert [json.loads(e["details"])["requests"] for e in got_b] == [1, 1, 1]
    # the new server process's first event for key a also counts only what it saw itself
    assert [json.loads(e["details"])["requests"] for e in await rows(db_url, events, a.project_id)] == [1, 1, 1]
