"""createProject, updateProject with settings, project/projects queries, pagination and N+1 freedom."""
from __future__ import annotations

from tests.helpers import add_member, create_project, signup

from .util import ERR, codes, raw_uuid, sql

CREATE = f"""mutation($input: CreateProjectInput!) {{ createProject(input: $input) {{
  project {{ id slug name description viewerRole createdAt
             settings {{ environments defaultEnvironment traceRetentionDays executionRetentionDays }}
             members {{ totalCount nodes {{ role addedAt user {{ username }} }} }} }} {ERR} }} }}"""
UPDATE = f"""mutation($input: UpdateProjectInput!) {{ updateProject(input: $input) {{
  project {{ name description
             settings {{ environments defaultEnvironment traceRetentionDays executionRetentionDays }} }} {ERR} }} }}"""
SETTINGS = """query($slug: String!) { project(slug: $slug) { name description
  settings { environments defaultEnvironment traceRetentionDays executionRetentionDays } } }"""


async def test_create_project_defaults(gql):
    token, _ = await signup(gql, "owner")
    p = (await gql(CREATE, {"input": {"name": " Demo ", "slug": "demo-1", "description": "A demo"}},
                   token=token))["data"]["createProject"]
    assert p["userErrors"] == []
    project = p["project"]
    assert project["slug"] == "demo-1" and project["name"] == "Demo" and project["description"] == "A demo"
    assert project["viewerRole"] == "OWNER"
    assert project["settings"] == {"environments": ["development", "staging", "production"],
                                   "defaultEnvironment": "production", "traceRetentionDays": None,
                                   "executionRetentionDays": None}
    assert project["members"]["totalCount"] == 1
    assert project["members"]["nodes"][0]["role"] == "OWNER"
    assert project["members"]["nodes"][0]["user"] == {"username": "owner"}
    q = "query($id: ID!) { node(id: $id) { ... on Project { slug } } }"
    assert (await gql(q, {"id": project["id"]}, token=token))["data"]["node"] == {"slug": "demo-1"}


async def test_create_project_validation(gql):
    token, _ = await signup(gql, "owner")
    other, _ = await signup(gql, "other")
    for slug in ("a", "Upper", "has space", "x" * 65, "under_score"):
        p = (await gql(CREATE, {"input": {"name": "n", "slug": slug}}, token=token))["data"]["createProject"]
        assert codes(p) == [("INVALID", ["input", "slug"])], slug
    p = (await gql(CREATE, {"input": {"name": "  ", "slug": "ok"}}, token=token))["data"]["createProject"]
    assert codes(p) == [("INVALID", ["input", "name"])]
    await create_project(gql, token, "taken")
    p = (await gql(CREATE, {"input": {"name": "n", "slug": "taken"}}, token=other))["data"]["createProject"]
    assert codes(p) == [("CONFLICT", ["input", "slug"])] and p["project"] is None
    body = await gql(CREATE, {"input": {"name": "n", "slug": "anon"}}, check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_update_project_settings(gql):
    token, _ = await signup(gql, "owner")
    pid = await create_project(gql, token, "settings")
    p = (await gql(UPDATE, {"input": {"id": pid, "name": "New name", "description": "d",
                                      "settings": {"environments": ["dev", "prod", "qa_1"],
                                                   "defaultEnvironment": "prod", "traceRetentionDays": 30,
                                                   "executionRetentionDays": 7}}}, token=token))["data"]["updateProject"]
    assert p["userErrors"] == []
    assert p["project"] == {"name": "New name", "description": "d",
                            "settings": {"environments": ["dev", "prod", "qa_1"], "defaultEnvironment": "prod",
                                         "traceRetentionDays": 30, "executionRetentionDays": 7}}
    # omitted fields stay; explicit null clears nullable ones
    p = (await gql(UPDATE, {"input": {"id": pid, "description": None,
                                      "settings": {"traceRetentionDays": None}}}, token=token))["data"]["updateProject"]
    assert p["userErrors"] == []
    assert p["project"]["description"] is None and p["project"]["name"] == "New name"
    assert p["project"]["settings"]["traceRetentionDays"] is None
    assert p["project"]["settings"]["executionRetentionDays"] == 7

    bad_cases = [
        ({"environments": []}, ["input", "settings", "environments"], "1 to 20"),
        ({"environments": [f"e{i}" for i in range(21)]}, ["input", "settings", "environments"], "1 to 20"),
        ({"environments": ["Prod"]}, ["input", "settings", "environments"], "'Prod'"),
        ({"environments": ["a", "a", "prod"]}, ["input", "settings", "environments"], "repeated: a"),
        ({"defaultEnvironment": "staging"}, ["input", "settings", "defaultEnvironment"], "not one of"),
        ({"environments": ["dev", "qa_1"]}, ["input", "settings", "defaultEnvironment"], "'prod'"),
        ({"traceRetentionDays": 0}, ["input", "settings", "traceRetentionDays"], "at least 1"),
        ({"executionRetentionDays": -3}, ["input", "settings", "executionRetentionDays"], "at least 1"),
    ]
    for settings, field, text in bad_cases:
        p = (await gql(UPDATE, {"input": {"id": pid, "settings": settings}}, token=token))["data"]["updateProject"]
        assert codes(p) == [("INVALID", field)], (settings, p)
        assert text in p["userErrors"][0]["message"], (settings, p)
    # nothing changed by the refused updates
    s = (await gql(SETTINGS, {"slug": "settings"}, token=token))["data"]["project"]["settings"]
    assert s == {"environments": ["dev", "prod", "qa_1"], "defaultEnvironment": "prod", "traceRetentionDays": None,
                 "executionRetentionDays": 7}
    p = (await gql(UPDATE, {"input": {"id": pid, "name": None}}, token=token))["data"]["updateProject"]
    assert codes(p) == [("INVALID", ["input", "name"])]


async def test_environment_with_active_deployments_cannot_be_removed(gql, db_url):
    token, uid = await signup(gql, "owner")
    pid = await create_project(gql, token, "deploys")
    async with sql(db_url) as conn:
        prompt_id = await conn.fetchval("INSERT INTO prompts (project_id, name, latest_version) "
                                        "VALUES ($1, 'greet', 1) RETURNING id", raw_uuid(pid))
        version_id = await conn.fetchval(
            "INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash) "
            "VALUES ($1, 1, 'TEXT', 'MUSTACHE', 'Hi', $2) RETURNING id", prompt_id, "0" * 64)
        dep_id = await conn.fetchval(
            "INSERT INTO deployments (prompt_id, version_id, environment, traffic_percentage) "
            "VALUES ($1, $2, 'staging', 100) RETURNING id", prompt_id, version_id)
    p = (await gql(UPDATE, {"input": {"id": pid, "settings": {"environments": ["development", "production"]}}},
                   token=token))["data"]["updateProject"]
    assert codes(p) == [("INVALID", ["input", "settings", "environments"])]
    assert "'staging' (1 prompt)" in p["userErrors"][0]["message"] and "undeploy" in p["userErrors"][0]["message"]
    # removing another environment is fine; once retired, staging can go too
    p = (await gql(UPDATE, {"input": {"id": pid, "settings": {"environments": ["staging", "production"]}}},
                   token=token))["data"]["updateProject"]
    assert p["userErrors"] == []
    async with sql(db_url) as conn:
        await conn.execute("UPDATE deployments SET retired_at = now() WHERE id = $1", dep_id)
    p = (await gql(UPDATE, {"input": {"id": pid, "settings": {"environments": ["production"]}}},
                   token=token))["data"]["updateProject"]
    assert p["userErrors"] == [] and p["project"]["settings"]["environments"] == ["production"]


async def test_update_project_permissions(gql):
    owner, _ = await signup(gql, "owner")
    admin, _ = await signup(gql, "admin")
    editor, _ = await signup(gql, "editor")
    pid = await create_project(gql, owner, "perm")
    await add_member(gql, owner, pid, "admin", "ADMIN")
    await add_member(gql, owner, pid, "editor", "EDITOR")
    p = (await gql(UPDATE, {"input": {"id": pid, "name": "by editor"}}, token=editor))["data"]["updateProject"]
    assert codes(p) == [("FORBIDDEN", ["input", "id"])] and p["project"] is None
    p = (await gql(UPDATE, {"input": {"id": pid, "name": "by admin"}}, token=admin))["data"]["updateProject"]
    assert p["userErrors"] == [] and p["project"]["name"] == "by admin"
    p = (await gql(UPDATE, {"input": {"id": "garbage", "name": "x"}}, token=owner))["data"]["updateProject"]
    assert codes(p) == [("NOT_FOUND", ["input", "id"])]


async def test_projects_query_and_user_projects(gql):
    a, _ = await signup(gql, "alice")   # superuser (first)
    b, _ = await signup(gql, "bob")
    c, _ = await signup(gql, "carol")
    pa = await create_project(gql, b, "b-one")
    await create_project(gql, b, "b-two")
    await create_project(gql, c, "c-one")
    await add_member(gql, b, pa, "carol", "VIEWER")
    q = "{ projects { totalCount nodes { slug viewerRole } } viewer { projects { totalCount nodes { slug } } } }"
    data = (await gql(q, token=b))["data"]
    assert [n["slug"] for n in data["projects"]["nodes"]] == ["b-one", "b-two"]
    assert {n["viewerRole"] for n in data["projects"]["nodes"]} == {"OWNER"}
    assert data["viewer"]["projects"]["totalCount"] == 2
    data = (await gql(q, token=c))["data"]
    assert [(n["slug"], n["viewerRole"]) for n in data["projects"]["nodes"]] == [("b-one", "VIEWER"), ("c-one", "OWNER")]
    # the superuser sees every project, with no role in them
    data = (await gql(q, token=a))["data"]
    assert data["projects"]["totalCount"] == 3 and {n["viewerRole"] for n in data["projects"]["nodes"]} == {None}
    assert data["viewer"]["projects"]["totalCount"] == 0
    # someone else's User.projects shows only projects the viewer shares
    members = '{ project(slug: "b-one") { members { nodes { user { username projects { nodes { slug } } } } } } }'
    nodes = (await gql(members, token=c))["data"]["project"]["members"]["nodes"]
    seen = {n["user"]["username"]: [p["slug"] for p in n["user"]["projects"]["nodes"]] for n in nodes}
    assert seen == {"bob": ["b-one"], "carol": ["b-one", "c-one"]}
    assert (await gql('{ projects { totalCount } project(slug: "b-one") { slug } }'))["data"] == {
        "projects": {"totalCount": 0}, "project": None}


async def test_projects_and_members_pagination(gql):
    owner, _ = await signup(gql, "owner")
    for i in range(5):
        await create_project(gql, owner, f"p-{i}")
    names = [f"mem{i}" for i in range(4)]
    for n in names:
        await signup(gql, n)
    pid = (await gql('{ project(slug: "p-0") { id } }', token=owner))["data"]["project"]["id"]
    for n in names:
        await add_member(gql, owner, pid, n, "VIEWER")

    q = """query($first: Int, $after: String) { projects(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { slug } } } }"""
    seen, after = [], None
    while True:
        page = (await gql(q, {"first": 2, "after": after}, token=owner))["data"]["projects"]
        assert page["totalCount"] == 5
        seen += [e["node"]["slug"] for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"p-{i}" for i in range(5)]

    mq = """query($first: Int, $after: String) { project(slug: "p-0") { members(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } nodes { user { username } role } } } }"""
    seen, after = [], None
    while True:
        page = (await gql(mq, {"first": 2, "after": after}, token=owner))["data"]["project"]["members"]
        assert page["totalCount"] == 5
        seen += [n["user"]["username"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["owner", *names]
    body = await gql(mq, {"first": 2, "after": "not-a-cursor"}, token=owner, check=False)
    assert "cursor" in body["errors"][0]["message"]
    body = await gql(mq, {"first": -1}, token=owner, check=False)
    assert "negative" in body["errors"][0]["message"]


N_PLUS_ONE = """{ projects(first: 20) { nodes { slug viewerRole settings { environments }
  members { totalCount nodes { role user { username } } } } } }"""


async def test_nested_members_do_not_query_per_project(gql, sql_counter):
    owner, _ = await signup(gql, "owner")
    helper, _ = await signup(gql, "helper")

    async def count(n_projects: int) -> tuple[int, dict]:
        existing = len((await gql("{ projects(first: 100) { nodes { id } } }", token=owner))["data"]["projects"]["nodes"])
        for i in range(existing, n_projects):
            pid = await create_project(gql, owner, f"n1-{i}")
            await add_member(gql, owner, pid, "helper", "EDITOR")
        with sql_counter() as c:
            body = await gql(N_PLUS_ONE, token=owner)
        return c.count, body["data"]

    few, data2 = await count(2)
    many, data8 = await count(8)
    assert len(data2["projects"]["nodes"]) == 2 and len(data8["projects"]["nodes"]) == 8
    assert all(p["members"]["totalCount"] == 2 for p in data8["projects"]["nodes"])
    assert {n["user"]["username"] for p in data8["projects"]["nodes"] for n in p["members"]["nodes"]} == {
        "owner", "helper"}
    assert few == many, (few, many)
