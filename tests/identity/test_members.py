"""Project members: who may add, change and remove whom; the last owner stays."""
from __future__ import annotations

from tests.helpers import add_member, create_api_key, create_project, signup

from .util import ERR, codes

ADD = f"""mutation($p: ID!, $login: String!, $role: ProjectRole!) {{
  addProjectMember(input: {{projectId: $p, login: $login, role: $role}}) {{
    member {{ role addedAt user {{ username }} }} {ERR} }} }}"""
UPDATE = f"""mutation($p: ID!, $u: ID!, $role: ProjectRole!) {{
  updateProjectMember(input: {{projectId: $p, userId: $u, role: $role}}) {{ member {{ role user {{ username }} }} {ERR} }} }}"""
REMOVE = f"""mutation($p: ID!, $u: ID!) {{
  removeProjectMember(input: {{projectId: $p, userId: $u}}) {{ member {{ role user {{ username }} }} {ERR} }} }}"""
ROLES = """query($slug: String!) { project(slug: $slug) { members(first: 100) { nodes { role user { username } } } } }"""


async def roles(gql, token, slug="team") -> dict[str, str]:
    nodes = (await gql(ROLES, {"slug": slug}, token=token))["data"]["project"]["members"]["nodes"]
    return {n["user"]["username"]: n["role"] for n in nodes}


async def team(gql):
    """root (superuser, no member), owner, admin, admin2, editor, viewer, outsider; project "team"."""
    t = {}
    ids = {}
    for name in ("root", "owner", "admin", "admin2", "editor", "viewer", "outsider"):
        t[name], ids[name] = await signup(gql, name)
    pid = await create_project(gql, t["owner"], "team")
    for name, role in (("admin", "ADMIN"), ("admin2", "ADMIN"), ("editor", "EDITOR"), ("viewer", "VIEWER")):
        await add_member(gql, t["owner"], pid, name, role)
    return t, ids, pid


async def test_member_rules(gql):
    t, ids, pid = await team(gql)

    async def add(who, login, role):
        return (await gql(ADD, {"p": pid, "login": login, "role": role}, token=t[who]))["data"]["addProjectMember"]

    async def update(who, target, role):
        return (await gql(UPDATE, {"p": pid, "u": ids[target], "role": role}, token=t[who]))["data"][
            "updateProjectMember"]

    async def remove(who, target):
        return (await gql(REMOVE, {"p": pid, "u": ids[target]}, token=t[who]))["data"]["removeProjectMember"]

    # adding
    assert codes(await add("editor", "outsider", "VIEWER")) == [("FORBIDDEN", ["input", "projectId"])]
    assert codes(await add("outsider", "outsider", "VIEWER")) == [("NOT_FOUND", ["input", "projectId"])]
    assert codes(await add("admin", "outsider", "OWNER")) == [("FORBIDDEN", ["input", "role"])]
    assert codes(await add("admin", "nobody@example.com", "VIEWER")) == [("NOT_FOUND", ["input", "login"])]
    assert codes(await add("admin", "EDITOR", "VIEWER")) == [("CONFLICT", ["input", "login"])]
    p = await add("admin", "OUTSIDER@example.com", "EDITOR")
    assert p["userErrors"] == [] and p["member"]["role"] == "EDITOR" and p["member"]["user"]["username"] == "outsider"

    # changing roles
    assert codes(await update("editor", "viewer", "EDITOR")) == [("FORBIDDEN", ["input", "projectId"])]
    assert codes(await update("admin", "admin2", "EDITOR")) == [("FORBIDDEN", ["input", "userId"])]
    assert codes(await update("admin", "owner", "ADMIN")) == [("FORBIDDEN", ["input", "userId"])]
    assert codes(await update("admin", "viewer", "OWNER")) == [("FORBIDDEN", ["input", "role"])]
    assert (await update("admin", "viewer", "ADMIN"))["member"]["role"] == "ADMIN"  # promote up to ADMIN
    assert codes(await update("admin", "viewer", "VIEWER")) == [("FORBIDDEN", ["input", "userId"])]  # now an admin
    assert (await update("owner", "viewer", "VIEWER"))["member"]["role"] == "VIEWER"
    assert codes(await update("viewer", "viewer", "EDITOR")) == [("FORBIDDEN", ["input", "role"])]  # no self-raise
    assert (await update("admin2", "admin2", "EDITOR"))["member"]["role"] == "EDITOR"  # self-demotion is fine
    assert codes(await update("admin", "root", "VIEWER")) == [("NOT_FOUND", ["input", "userId"])]

    # the last owner
    assert codes(await update("owner", "owner", "ADMIN")) == [("CONFLICT", ["input", "role"])]
    p = await remove("owner", "owner")
    assert codes(p) == [("CONFLICT", ["input", "userId"])] and "last owner" in p["userErrors"][0]["message"]
    assert (await update("owner", "admin", "OWNER"))["member"]["role"] == "OWNER"
    # now two owners: one may step down; the other is then the last again
    assert (await update("admin", "owner", "ADMIN"))["member"]["role"] == "ADMIN"
    assert codes(await update("admin", "admin", "EDITOR")) == [("CONFLICT", ["input", "role"])]

    # removing: admins remove editors/viewers, not admins or owners; anyone may leave
    assert codes(await remove("editor", "viewer")) == [("FORBIDDEN", ["input", "projectId"])]
    assert codes(await remove("owner", "admin")) == [("FORBIDDEN", ["input", "userId"])]  # owner is ADMIN now
    p = await remove("owner", "viewer")
    assert p["userErrors"] == [] and p["member"] == {"role": "VIEWER", "user": {"username": "viewer"}}
    assert (await remove("editor", "editor"))["userErrors"] == []  # leaving
    # a superuser (not a member) acts as an owner
    assert (await update("root", "owner", "OWNER"))["userErrors"] == []
    assert (await remove("root", "admin"))["userErrors"] == []

    assert await roles(gql, t["owner"]) == {"owner": "OWNER", "admin2": "EDITOR", "outsider": "EDITOR"}
    # those who left see nothing any more
    assert (await gql(ROLES, {"slug": "team"}, token=t["editor"]))["data"]["project"] is None


async def test_api_key_members_rules(gql):
    t, ids, pid = await team(gql)
    key = await create_api_key(gql, t["owner"], pid, ["PROJECT_ADMIN"])
    reader = await create_api_key(gql, t["owner"], pid, ["PROMPTS_WRITE"])
    p = (await gql(ADD, {"p": pid, "login": "outsider", "role": "VIEWER"}, token=reader))["data"]["addProjectMember"]
    assert codes(p) == [("FORBIDDEN", ["input", "projectId"])]
    p = (await gql(ADD, {"p": pid, "login": "outsider", "role": "ADMIN"}, token=key))["data"]["addProjectMember"]
    assert codes(p) == [("FORBIDDEN", ["input", "role"])]
    p = (await gql(ADD, {"p": pid, "login": "outsider", "role": "EDITOR"}, token=key))["data"]["addProjectMember"]
    assert p["userErrors"] == []
    p = (await gql(UPDATE, {"p": pid, "u": ids["admin"], "role": "VIEWER"}, token=key))["data"]["updateProjectMember"]
    assert codes(p) == [("FORBIDDEN", ["input", "userId"])]
    p = (await gql(REMOVE, {"p": pid, "u": ids["viewer"]}, token=key))["data"]["removeProjectMember"]
    assert p["userErrors"] == []
    assert await roles(gql, t["owner"]) == {"owner": "OWNER", "admin": "ADMIN", "admin2": "ADMIN",
                                            "editor": "EDITOR", "outsider": "EDITOR"}


async def test_members_visibility(gql):
    t, ids, pid = await team(gql)
    # any member sees the member list, and the other members' users (without email)
    q = """query($id: ID!) { project(slug: "team") { members { totalCount } }
             node(id: $id) { ... on User { username email } } }"""
    data = (await gql(q, {"id": ids["owner"]}, token=t["viewer"]))["data"]
    assert data["project"]["members"]["totalCount"] == 5
    assert data["node"] == {"username": "owner", "email": None}
    data = (await gql(q, {"id": ids["owner"]}, token=t["outsider"]))["data"]
    assert data == {"project": None, "node": None}
