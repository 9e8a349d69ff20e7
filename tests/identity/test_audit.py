"""The audit log: every mutation attempt (success, failure, denied) with actor, key, IP and user agent."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.helpers import add_member, create_api_key, create_project, signup

from .util import ERR, sql

EVENTS = """query($first: Int, $after: String, $filter: AuditFilter) { project(slug: "audited") {
  auditEvents(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id action result resourceType resourceId ipAddress userAgent details createdAt
            actor { username } apiKey { name } } } } }"""
UPDATE = f"""mutation($id: ID!, $name: String) {{ updateProject(input: {{id: $id, name: $name}}) {{ {ERR} }} }}"""
UA = {"User-Agent": "audit-test/1.0"}


async def events(gql, token, **variables):
    return (await gql(EVENTS, variables, token=token))["data"]["project"]["auditEvents"]


async def test_success_failure_and_denied_are_recorded(gql):
    owner, owner_id = await signup(gql, "owner")
    editor, editor_id = await signup(gql, "editor")
    pid = await create_project(gql, owner, "audited")
    await add_member(gql, owner, pid, "editor", "EDITOR")
    await gql(UPDATE, {"id": pid, "name": "Renamed"}, token=owner, headers=UA)            # SUCCESS
    await gql(UPDATE, {"id": pid, "name": " "}, token=owner, headers=UA)                  # FAILURE (invalid)
    await gql(UPDATE, {"id": pid, "name": "Mine"}, token=editor, headers=UA)             # DENIED
    key = await create_api_key(gql, owner, pid, ["PROJECT_ADMIN"], name="robot")
    await gql(UPDATE, {"id": pid, "name": "By key"}, token=key, headers=UA)              # SUCCESS by a key

    page = await events(gql, owner, filter={"action": "project.update"})
    got = [(e["result"], e["actor"] and e["actor"]["username"], e["apiKey"] and e["apiKey"]["name"])
           for e in page["nodes"]]
    # newest first
    assert got == [("SUCCESS", None, "robot"), ("DENIED", "editor", None), ("FAILURE", "owner", None),
                   ("SUCCESS", "owner", None)]
    for e in page["nodes"]:
        assert e["ipAddress"] == "127.0.0.1" and e["userAgent"] == "audit-test/1.0"
        assert e["resourceType"] in ("Project", None)
    success = page["nodes"][-1]
    assert success["resourceType"] == "Project" and success["resourceId"] == pid
    assert success["details"] == {"changed": ["name"]}
    failure = page["nodes"][2]
    assert failure["details"]["error"]["code"] == "INVALID"
    denied = page["nodes"][1]
    assert denied["details"]["error"]["code"] == "FORBIDDEN"
    # resourceId is a global ID: node() resolves it
    node = await gql("query($id: ID!) { node(id: $id) { ... on Project { slug } } }", {"id": success["resourceId"]},
                     token=owner)
    assert node["data"]["node"] == {"slug": "audited"}
    # the event itself is a node, for the project's admins only
    q = "query($id: ID!) { node(id: $id) { ... on AuditEvent { action } } }"
    assert (await gql(q, {"id": success["id"]}, token=owner))["data"]["node"] == {"action": "project.update"}
    assert (await gql(q, {"id": success["id"]}, token=editor))["data"]["node"] is None
    # the editor does not see the audit log at all
    assert (await events(gql, editor))["totalCount"] == 0

    actions = {e["action"] for e in (await events(gql, owner, first=100))["nodes"]}
    assert actions == {"project.create", "project_member.add", "project.update", "api_key.create"}


async def test_filters_and_pagination(gql, db_url):
    owner, owner_id = await signup(gql, "owner")
    admin, admin_id = await signup(gql, "admin")
    pid = await create_project(gql, owner, "audited")
    await add_member(gql, owner, pid, "admin", "ADMIN")
    for i in range(5):
        await gql(UPDATE, {"id": pid, "name": f"Name {i}"}, token=owner)
    for i in range(2):
        await gql(UPDATE, {"id": pid, "name": f"Admin {i}"}, token=admin)
    await gql(UPDATE, {"id": pid, "name": ""}, token=admin)

    all_events = await events(gql, owner, first=100)
    assert all_events["totalCount"] == 10  # create, add member, 5 + 2 + 1 updates
    times = [e["createdAt"] for e in all_events["nodes"]]
    assert times == sorted(times, reverse=True)

    by_admin = await events(gql, owner, filter={"actorId": admin_id})
    assert by_admin["totalCount"] == 3 and {e["actor"]["username"] for e in by_admin["nodes"]} == {"admin"}
    failures = await events(gql, owner, filter={"result": "FAILURE"})
    assert failures["totalCount"] == 1 and failures["nodes"][0]["actor"]["username"] == "admin"
    combo = await events(gql, owner, filter={"actorId": owner_id, "action": "project.update", "result": "SUCCESS"})
    assert combo["totalCount"] == 5
    assert (await events(gql, owner, filter={"actorId": "garbage"}))["totalCount"] == 0
    assert (await events(gql, owner, filter={"action": "nothing.like.this"}))["totalCount"] == 0

    # time window: move the two admin successes an hour back
    async with sql(db_url) as conn:
        await conn.execute("UPDATE audit_events SET created_at = created_at - interval '1 hour' "
                           "WHERE action = 'project.update' AND result = 'SUCCESS' AND actor_id = "
                           "(SELECT id FROM users WHERE username = 'admin')")
    cut = (datetime.now(timezone.utc) - timedelta(minutes=30)).isoformat()
    assert (await events(gql, owner, filter={"to": cut}))["totalCount"] == 2
    assert (await events(gql, owner, filter={"from": cut}))["totalCount"] == 8

    # pages of 3, newest first, no overlaps, nothing skipped
    seen, after, pages = [], None, 0
    while True:
        page = await events(gql, owner, first=3, after=after)
        pages += 1
        assert page["totalCount"] == 10
        seen += [e["id"] for e in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 4 and len(seen) == len(set(seen)) == 10
    expected = [e["id"] for e in (await events(gql, owner, first=100))["nodes"]]
    assert seen == expected


async def test_account_events_have_no_project(gql, db_url):
    await signup(gql, "first")
    token, _ = await signup(gql, "second")
    await gql(f"mutation {{ logOut {{ ok {ERR} }} }}", token=token, headers=UA)
    async with sql(db_url) as conn:
        rows = await conn.fetch("SELECT action, result, project_id, actor_id, user_agent FROM audit_events "
                                "ORDER BY created_at")
    assert [(r["action"], r["result"]) for r in rows] == [("user.sign_up", "SUCCESS"), ("user.sign_up", "SUCCESS"),
                                                          ("user.log_out", "SUCCESS")]
    assert all(r["project_id"] is None and r["actor_id"] is not None for r in rows)
    assert rows[-1]["user_agent"] == "audit-test/1.0"
