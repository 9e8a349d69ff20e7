"""Tenant isolation: a member of project A, an API key of A (all scopes), and an anonymous caller can
neither read nor change anything of project B. Reads give null / empty; writes give NOT_FOUND (or
FORBIDDEN) user errors, and top-level UNAUTHENTICATED for anonymous callers; B is left unchanged."""
from __future__ import annotations

from datetime import UTC, datetime

from app.services.traces import SpanRecord, SpanUsage, write_spans
from tests.helpers import add_member, create_api_key, create_project, signup

from .util import ERR, raw_uuid

B_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
B_TRACE_READ = """query($t: String!) { project(slug: "beta") { trace(traceId: $t) { id
  spans { nodes { id usage { id } } } } } }"""
TRACES_OF = """query($t: String!) { project(slug: "alpha") { traces { totalCount } trace(traceId: $t) { id } } }"""
COSTS_OF = """query($p: ID!) { costReport(projectId: $p, from: "2026-01-01T00:00:00Z", to: "2027-01-01T00:00:00Z",
  bucket: MONTH) { totals { calls } } }"""

ALL_SCOPES = ["PROMPTS_READ", "PROMPTS_WRITE", "EXECUTIONS_READ", "EXECUTIONS_WRITE", "TRACES_READ", "TRACES_WRITE",
              "EXPERIMENTS_READ", "EXPERIMENTS_WRITE", "PROJECT_ADMIN"]

SNAPSHOT = """{ project(slug: "beta") { id name description
  settings { environments defaultEnvironment traceRetentionDays executionRetentionDays }
  members { totalCount nodes { role user { id username } } }
  apiKeys(includeRevoked: true) { totalCount nodes { id name revokedAt } }
  providerCredentials { id provider keyHint baseUrl }
  auditEvents(first: 100) { totalCount nodes { id action } } } }"""

READ_NODES = """query($ids: [ID!]!, $one: ID!) { node(id: $one) { id } nodes(ids: $ids) { id }
  project(slug: "beta") { id members { totalCount } apiKeys { totalCount } auditEvents { totalCount }
                          providerCredentials { id } }
  projects(first: 100) { totalCount nodes { slug members { totalCount } auditEvents { totalCount } } } }"""

SHARED_USER = """query($id: ID!) { node(id: $id) { ... on User { username projects { totalCount nodes { slug } } } } }"""

MUTATIONS = {
    "updateProject": ("""mutation($input: UpdateProjectInput!) { updateProject(input: $input) {
        project { id } %s } }""" % ERR, lambda b: {"id": b["project"], "name": "hacked",
                                                  "settings": {"environments": ["x"], "defaultEnvironment": "x"}},
                      ["input", "id"]),
    "addProjectMember": ("""mutation($input: AddProjectMemberInput!) { addProjectMember(input: $input) {
        member { role } %s } }""" % ERR, lambda b: {"projectId": b["project"], "login": "mallory", "role": "OWNER"},
                         ["input", "projectId"]),
    "updateProjectMember": ("""mutation($input: UpdateProjectMemberInput!) { updateProjectMember(input: $input) {
        member { role } %s } }""" % ERR, lambda b: {"projectId": b["project"], "userId": b["member"], "role": "VIEWER"},
                            ["input", "projectId"]),
    "removeProjectMember": ("""mutation($input: RemoveProjectMemberInput!) { removeProjectMember(input: $input) {
        member { role } %s } }""" % ERR, lambda b: {"projectId": b["project"], "userId": b["member"]},
                            ["input", "projectId"]),
    "createApiKey": ("""mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
        secret apiKey { id } %s } }""" % ERR, lambda b: {"projectId": b["project"], "name": "evil",
                                                      "scopes": ["PROJECT_ADMIN"]},
                     ["input", "projectId"]),
    "revokeApiKey": ("""mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) {
        apiKey { id revokedAt } %s } }""" % ERR, lambda b: {"id": b["key"]}, ["input", "id"]),
    "setProviderCredential": ("""mutation($input: SetProviderCredentialInput!) { setProviderCredential(input: $input) {
        credential { id } %s } }""" % ERR, lambda b: {"projectId": b["project"], "provider": "openai",
                                                   "apiKey": "sk-attacker-000000"},
                              ["input", "projectId"]),
}


async def _b_trace(app, gql, bob: str, pb: str) -> list[str]:
    """A trace of B with an LLM span (usage); returns the node ids of the trace, its span and the usage."""
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    span = SpanRecord(trace_id=B_TRACE, span_id="00f067aa0ba902b7", name="b's secret run", kind="LLM", start_time=at,
                      end_time=at, usage=SpanUsage(provider="openai", model="gpt-4o", input_tokens=5, output_tokens=5))
    async with app.state.runtime.sessionmaker() as session, session.begin():
        await write_spans(session, raw_uuid(pb), [span])
    trace = (await gql(B_TRACE_READ, {"t": B_TRACE}, token=bob))["data"]["project"]["trace"]
    (node,) = trace["spans"]["nodes"]
    return [trace["id"], node["id"], node["usage"]["id"]]


async def test_tenant_isolation_matrix(gql, app):
    await signup(gql, "root")  # the first user is a superuser; keep the tenants' users ordinary
    alice, _ = await signup(gql, "alice")      # owner of A
    bob, bob_id = await signup(gql, "bob")     # owner of B
    _, shared_id = await signup(gql, "shared")  # member of both A and B
    await signup(gql, "mallory")
    pa = await create_project(gql, alice, "alpha")
    pb = await create_project(gql, bob, "beta")
    await add_member(gql, alice, pa, "shared", "VIEWER")
    await add_member(gql, bob, pb, "shared", "EDITOR")
    key_a = await create_api_key(gql, alice, pa, ALL_SCOPES, name="a-key")
    await create_api_key(gql, bob, pb, ["PROMPTS_READ"], name="b-key")
    await gql(f"""mutation($p: ID!) {{ setProviderCredential(input: {{projectId: $p, provider: "anthropic",
               apiKey: "sk-ant-bob-secret-4321"}}) {{ {ERR} }} }}""", {"p": pb}, token=bob)

    before = (await gql(SNAPSHOT, token=bob))["data"]["project"]
    b = {"project": pb, "member": shared_id, "owner": bob_id, "key": before["apiKeys"]["nodes"][0]["id"],
         "credential": before["providerCredentials"][0]["id"], "event": before["auditEvents"]["nodes"][0]["id"]}
    b_ids = [b["project"], b["key"], b["credential"], b["event"], b["owner"], *await _b_trace(app, gql, bob, pb)]

    callers = {"member of A": alice, "API key of A": key_a, "anonymous": None}
    for label, token in callers.items():
        # --- reads
        for one in b_ids:
            data = (await gql(READ_NODES, {"ids": b_ids, "one": one}, token=token or ""))["data"]
            assert data["node"] is None, (label, one)
            assert data["nodes"] == [None] * len(b_ids), label
            assert data["project"] is None, label
            slugs = [p["slug"] for p in data["projects"]["nodes"]]
            assert "beta" not in slugs, label
            assert slugs == ([] if token is None else ["alpha"]), label
        # B's traces and costs: not through A, not by B's id
        if token is not None:  # (anonymous callers see no project at all: above)
            body = await gql(TRACES_OF, {"t": B_TRACE}, token=token)
            assert body["data"]["project"] == {"traces": {"totalCount": 0}, "trace": None}, (label, body)
        body = await gql(COSTS_OF, {"p": pb}, token=token or "", check=False)
        assert body["data"] is None and "calls" not in str(body), (label, body)
        assert [e["extensions"]["code"] for e in body["errors"]] == [
            "UNAUTHENTICATED" if token is None else "NOT_FOUND"], (label, body)
        # a user both tenants share shows only the projects the caller shares with them
        shared = (await gql(SHARED_USER, {"id": shared_id}, token=token or ""))["data"]["node"]
        if token is None:
            assert shared is None
        else:
            assert shared["projects"] == {"totalCount": 1, "nodes": [{"slug": "alpha"}]}, label

        # --- writes
        for name, (query, make_input, field) in MUTATIONS.items():
            body = await gql(query, {"input": make_input(b)}, token=token or "", check=False)
            if token is None:
                assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (label, name, body)
                assert body.get("data") is None, (label, name)
                continue
            assert "errors" not in body, (label, name, body)
            payload = body["data"][name]
            errors = [(e["code"], e["field"]) for e in payload["userErrors"]]
            assert len(errors) == 1 and errors[0][0] in ("NOT_FOUND", "FORBIDDEN"), (label, name, errors)
            assert errors[0] == ("NOT_FOUND", field), (label, name, errors)
            assert "secret" not in payload or payload["secret"] is None

    # B did not change (its audit log only gained nothing: others' attempts on an invisible project
    # are not filed under it)
    after = (await gql(SNAPSHOT, token=bob))["data"]["project"]
    assert after == before

    # and A's own admin key really can do these things in A (the matrix is not vacuous)
    body = await gql(MUTATIONS["updateProject"][0], {"input": {"id": pa, "name": "A renamed"}}, token=key_a)
    assert body["data"]["updateProject"]["userErrors"] == []
