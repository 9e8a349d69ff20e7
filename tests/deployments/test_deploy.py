"""deployPromptVersion, setTrafficSplit, undeployPrompt and deployment history, through GraphQL."""
from __future__ import annotations

import asyncio
import json

import asyncpg

from .util import (ERR, add_member, create_api_key, create_prompt, deploy, raw_uuid, signup, split,
                   tenant, undeploy)

ACTIVE = """query($id: ID!, $env: String) { node(id: $id) { ... on Prompt {
  deployments(environment: $env) { environment trafficPercentage isActive version { number } } } } }"""

HISTORY = """query($id: ID!, $first: Int, $after: String, $env: String) { node(id: $id) { ... on Prompt {
  deploymentHistory(first: $first, after: $after, environment: $env) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id environment trafficPercentage isActive deployedAt retiredAt
            deployedBy { id } retiredBy { id } version { number } prompt { id } } } } } }"""


def codes(payload):
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def active(gql, token, prompt_id, env=None):
    body = await gql(ACTIVE, {"id": prompt_id, "env": env}, token=token)
    return sorted((d["environment"], d["version"]["number"], d["trafficPercentage"])
                  for d in body["data"]["node"]["deployments"])


async def audit_rows(db_url, action):
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetch("SELECT result, details, resource_type, resource_id, project_id FROM audit_events "
                                "WHERE action = $1 ORDER BY created_at", action)
    finally:
        await conn.close()


async def test_deploy_split_undeploy_and_history(gql, db_url):
    t = await tenant(gql, "ann", versions=3)
    v1, v2, v3 = t.versions

    p = await deploy(gql, t.token, v1)
    assert p["userErrors"] == []
    assert [(d["version"]["number"], d["trafficPercentage"], d["isActive"]) for d in p["deployments"]] == [(1, 100, True)]
    assert await active(gql, t.token, t.prompt_id) == [("production", 1, 100)]

    p = await split(gql, t.token, t.prompt_id, [(v2, 30), (v1, 70)])
    assert p["userErrors"] == []
    # Bucket order: by version number, whatever the order given.
    assert [(d["version"]["number"], d["trafficPercentage"]) for d in p["deployments"]] == [(1, 70), (2, 30)]
    assert await active(gql, t.token, t.prompt_id) == [("production", 1, 70), ("production", 2, 30)]

    # The same split again changes nothing (no new history rows).
    p = await split(gql, t.token, t.prompt_id, [(v1, 70), (v2, 30)])
    assert p["userErrors"] == [] and len(p["deployments"]) == 2

    # Another environment is independent.
    assert (await deploy(gql, t.token, v3, "staging"))["userErrors"] == []
    assert await active(gql, t.token, t.prompt_id, "staging") == [("staging", 3, 100)]

    # PromptVersion.deployments: the active rows serving the version.
    body = await gql("""query($id: ID!) { node(id: $id) { ... on PromptVersion {
        deployments { environment trafficPercentage } } } }""", {"id": v1}, token=t.token)
    assert body["data"]["node"]["deployments"] == [{"environment": "production", "trafficPercentage": 70}]

    p = await undeploy(gql, t.token, t.prompt_id)
    assert p == {"deployments": [], "userErrors": []}
    assert await active(gql, t.token, t.prompt_id) == [("staging", 3, 100)]
    # Undeploying again is not an error.
    assert (await undeploy(gql, t.token, t.prompt_id))["userErrors"] == []

    # History: newest first, who deployed and retired what, paginated.
    body = await gql(HISTORY, {"id": t.prompt_id, "first": 10, "env": "production"}, token=t.token)
    hist = body["data"]["node"]["deploymentHistory"]
    assert hist["totalCount"] == 3
    rows = hist["nodes"]
    assert sorted(r["version"]["number"] for r in rows[:2]) == [1, 2]  # the split (same deployedAt)
    assert rows[2]["version"]["number"] == 1 and rows[2]["trafficPercentage"] == 100
    assert all(not r["isActive"] and r["retiredAt"] is not None for r in rows)
    assert all(r["deployedBy"]["id"] == t.user_id and r["retiredBy"]["id"] == t.user_id for r in rows)
    assert all(r["prompt"]["id"] == t.prompt_id for r in rows)
    assert rows[0]["deployedAt"] == rows[1]["deployedAt"] == rows[2]["retiredAt"]
    assert rows[2]["deployedAt"] <= rows[2]["retiredAt"]

    page1 = (await gql(HISTORY, {"id": t.prompt_id, "first": 2}, token=t.token))["data"]["node"]["deploymentHistory"]
    assert page1["totalCount"] == 4 and page1["pageInfo"]["hasNextPage"] is True
    page2 = (await gql(HISTORY, {"id": t.prompt_id, "first": 2, "after": page1["pageInfo"]["endCursor"]},
                       token=t.token))["data"]["node"]["deploymentHistory"]
    assert page2["pageInfo"]["hasNextPage"] is False
    ids = [r["id"] for r in page1["nodes"] + page2["nodes"]]
    assert len(set(ids)) == 4
    assert page1["nodes"][0]["environment"] == "staging"  # the newest change

    # A deployment is a node.
    body = await gql("""query($id: ID!) { node(id: $id) { id ... on Deployment { environment isActive } } }""",
                     {"id": rows[0]["id"]}, token=t.token)
    assert body["data"]["node"] == {"id": rows[0]["id"], "environment": "production", "isActive": False}

    # Audit: each change, with environment, versions and percentages.
    sets = await audit_rows(db_url, "deployment.set")
    assert [r["result"] for r in sets] == ["SUCCESS", "SUCCESS"]
    splits = await audit_rows(db_url, "deployment.split")
    details = json.loads(splits[0]["details"])
    assert details["environment"] == "production"
    assert details["versions"] == [2, 1] and details["percentages"] == [30, 70]
    assert details["previous"][0]["version"] == 1 and details["previous"][0]["percentage"] == 100
    assert json.loads(splits[1]["details"]).get("unchanged") is True
    assert splits[0]["resource_type"] == "Prompt" and splits[0]["resource_id"] == raw_uuid(t.prompt_id)
    assert splits[0]["project_id"] == raw_uuid(t.project_id)
    undeploys = await audit_rows(db_url, "deployment.undeploy")
    assert json.loads(undeploys[0]["details"])["retired"] == 2


async def test_split_bad_input_is_refused_and_nothing_is_written(gql):
    t = await tenant(gql, "bea", versions=2)
    v1, v2 = t.versions
    other_prompt, other_v1 = await create_prompt(gql, t.token, t.project_id, "other")
    assert (await deploy(gql, t.token, v1))["userErrors"] == []

    p = await split(gql, t.token, t.prompt_id, [(v1, 60), (v2, 30)])
    assert codes(p) == [("INVALID", ["input", "splits"])]
    assert "add up to 90; they must add up to 100" in p["userErrors"][0]["message"]
    assert p["deployments"] == []

    p = await split(gql, t.token, t.prompt_id, [(v1, 50), (v1, 50)])
    assert codes(p) == [("INVALID", ["input", "splits", "1", "versionId"])]
    assert "more than once" in p["userErrors"][0]["message"]

    p = await split(gql, t.token, t.prompt_id, [(v1, 50), (other_v1, 50)])
    assert codes(p) == [("INVALID", ["input", "splits", "1", "versionId"])]
    assert "'other'" in p["userErrors"][0]["message"] and "one prompt" in p["userErrors"][0]["message"]

    p = await split(gql, t.token, t.prompt_id, [(v1, 0), (v2, 100)])
    assert codes(p) == [("INVALID", ["input", "splits", "0", "percentage"])]
    assert "between 1 and 100" in p["userErrors"][0]["message"]

    p = await split(gql, t.token, t.prompt_id, [(v1, 100)], environment="prod")
    assert codes(p) == [("INVALID", ["input", "environment"])]
    assert "development, staging, production" in p["userErrors"][0]["message"]

    p = await split(gql, t.token, t.prompt_id, [])
    assert codes(p) == [("INVALID", ["input", "splits"])]

    p = await split(gql, t.token, t.prompt_id, [("not-an-id", 100)])
    assert codes(p) == [("NOT_FOUND", ["input", "splits", "0", "versionId"])]

    # Everything wrong at once is reported at once.
    p = await split(gql, t.token, t.prompt_id, [(v1, 0), (v1, 20)], environment="nope")
    assert {tuple(f) for _, f in codes(p)} == {("input", "environment"), ("input", "splits", "0", "percentage"),
                                               ("input", "splits", "1", "versionId"), ("input", "splits")}

    p = await deploy(gql, t.token, v2, "qa")
    assert codes(p) == [("INVALID", ["input", "environment"])]

    assert await active(gql, t.token, t.prompt_id) == [("production", 1, 100)]
    body = await gql(HISTORY, {"id": t.prompt_id, "first": 10}, token=t.token)
    assert body["data"]["node"]["deploymentHistory"]["totalCount"] == 1


async def test_permissions_and_tenancy(gql, db_url):
    t = await tenant(gql, "cat", versions=2)
    v1, v2 = t.versions
    o = await tenant(gql, "dan", versions=1)

    # Other tenants' IDs: NOT_FOUND, as if they did not exist.
    p = await deploy(gql, o.token, v1)
    assert codes(p) == [("NOT_FOUND", ["input", "versionId"])]
    assert p["userErrors"][0]["message"] == "No version with this ID."
    p = await split(gql, o.token, t.prompt_id, [(v1, 100)])
    assert codes(p) == [("NOT_FOUND", ["input", "promptId"])]
    assert p["userErrors"][0]["message"] == "No prompt with this ID."
    p = await split(gql, o.token, o.prompt_id, [(v1, 100)])
    assert codes(p) == [("NOT_FOUND", ["input", "splits", "0", "versionId"])]
    p = await undeploy(gql, o.token, t.prompt_id)
    assert codes(p) == [("NOT_FOUND", ["input", "promptId"])]

    # A viewer may read but not deploy.
    viewer, _ = await signup(gql, "eve")
    await add_member(gql, t.token, t.project_id, "eve", "VIEWER")
    p = await deploy(gql, viewer, v1)
    assert codes(p) == [("FORBIDDEN", ["input", "versionId"])]
    assert "EDITOR" in p["userErrors"][0]["message"]
    p = await split(gql, viewer, t.prompt_id, [(v1, 100)])
    assert codes(p) == [("FORBIDDEN", ["input", "promptId"])]
    assert (await active(gql, viewer, t.prompt_id)) == []

    # An editor may.
    editor, _ = await signup(gql, "fay")
    await add_member(gql, t.token, t.project_id, "fay", "EDITOR")
    assert (await deploy(gql, editor, v1))["userErrors"] == []

    # API keys: PROMPTS_READ is not enough; PROMPTS_WRITE is.
    reader = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_READ"])
    p = await split(gql, reader, t.prompt_id, [(v1, 50), (v2, 50)])
    assert codes(p) == [("FORBIDDEN", ["input", "promptId"])]
    assert "PROMPTS_WRITE" in p["userErrors"][0]["message"]
    writer = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_WRITE"])
    p = await split(gql, writer, t.prompt_id, [(v1, 50), (v2, 50)])
    assert p["userErrors"] == []
    # A key of another project sees nothing.
    other_key = await create_api_key(gql, o.token, o.project_id, ["PROMPTS_WRITE"])
    assert codes(await undeploy(gql, other_key, t.prompt_id)) == [("NOT_FOUND", ["input", "promptId"])]

    # Anonymous: a top-level UNAUTHENTICATED error.
    body = await gql("""mutation($input: UndeployPromptInput!) { undeployPrompt(input: $input) { userErrors { code } } }""",
                     {"input": {"promptId": t.prompt_id, "environment": "production"}}, token="", check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # Deployments of others are not visible as nodes either.
    body = await gql(HISTORY, {"id": t.prompt_id, "first": 1}, token=t.token)
    dep_id = body["data"]["node"]["deploymentHistory"]["nodes"][0]["id"]
    body = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": dep_id}, token=o.token)
    assert body["data"]["node"] is None

    rows = await audit_rows(db_url, "deployment.split")
    denied = [r for r in rows if r["result"] == "DENIED"]
    assert len(denied) == 2 and all(r["project_id"] == raw_uuid(t.project_id) for r in denied)
    failed = [r for r in rows if r["result"] == "FAILURE"]
    assert failed and all(r["project_id"] != raw_uuid(t.project_id) for r in failed)


async def test_archived_prompts_cannot_be_deployed(gql):
    t = await tenant(gql, "gus", versions=2)
    assert (await deploy(gql, t.token, t.versions[0]))["userErrors"] == []
    body = await gql(f"""mutation($input: UpdatePromptInput!) {{ updatePrompt(input: $input) {{
        prompt {{ status }} {ERR} }} }}""", {"input": {"id": t.prompt_id, "status": "ARCHIVED"}}, token=t.token)
    assert body["data"]["updatePrompt"]["userErrors"] == []
    p = await deploy(gql, t.token, t.versions[1])
    assert codes(p) == [("CONFLICT", ["input", "versionId"])]
    assert "archived" in p["userErrors"][0]["message"]
    p = await split(gql, t.token, t.prompt_id, [(t.versions[0], 50), (t.versions[1], 50)])
    assert codes(p) == [("CONFLICT", ["input", "promptId"])]
    # Archiving does not retire deployments: what is deployed is still served until undeployed.
    body = await gql("""query($p: ID!) { resolvePrompt(projectId: $p, name: "greeting", subjectKey: "s") {
        version { number } } }""", {"p": t.project_id}, token=t.token)
    assert body["data"]["resolvePrompt"] == {"version": {"number": 1}}
    assert (await undeploy(gql, t.token, t.prompt_id))["userErrors"] == []
    body = await gql("""query($p: ID!) { resolvePrompt(projectId: $p, name: "greeting") { bucket } }""",
                     {"p": t.project_id}, token=t.token, check=False)
    assert body["data"]["resolvePrompt"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_DEPLOYED"]


async def test_concurrent_changes_of_one_prompt_are_serialised(gql):
    t = await tenant(gql, "hal", versions=3)
    v1, v2, v3 = t.versions
    plans = [[(v1, 100)], [(v1, 50), (v2, 50)], [(v2, 10), (v3, 90)], [(v1, 34), (v2, 33), (v3, 33)]] * 3
    results = await asyncio.gather(*(split(gql, t.token, t.prompt_id, plan) for plan in plans))
    assert all(r["userErrors"] == [] for r in results)
    final = await active(gql, t.token, t.prompt_id)
    assert sum(pct for _, _, pct in final) == 100
    body = await gql(HISTORY, {"id": t.prompt_id, "first": 100}, token=t.token)
    rows = body["data"]["node"]["deploymentHistory"]["nodes"]
    assert sum(1 for r in rows if r["isActive"]) == len(final)
    assert all(r["retiredAt"] >= r["deployedAt"] for r in rows if r["retiredAt"])


async def test_removing_an_environment_races_no_deployment_into_it(gql, db_url):
    """updateProject removing an environment and a deployment into it, at the same moment: either the
    deployment lands first (and the removal is refused), or the removal does (and the deployment is
    refused) — never an active deployment in an environment the project no longer has."""
    t = await tenant(gql, "rhea", versions=1)
    update = """mutation($input: UpdateProjectInput!) { updateProject(input: $input) {
      project { settings { environments } } userErrors { code message } } }"""
    deploy_q = """mutation($v: ID!, $env: String!) { deployPromptVersion(input: {versionId: $v, environment: $env}) {
      deployments { id } userErrors { code message } } }"""
    for round_ in range(6):
        env = f"canary{round_}"
        body = await gql(update, {"input": {"id": t.project_id, "settings": {
            "environments": ["development", "staging", "production", env]}}}, token=t.token)
        assert body["data"]["updateProject"]["userErrors"] == []
        removal, deployment = await asyncio.gather(
            gql(update, {"input": {"id": t.project_id, "settings": {
                "environments": ["development", "staging", "production"]}}}, token=t.token),
            gql(deploy_q, {"v": t.versions[0], "env": env}, token=t.token))
        removed = removal["data"]["updateProject"]["userErrors"] == []
        deployed = deployment["data"]["deployPromptVersion"]["userErrors"] == []
        assert removed != deployed, (removal, deployment)  # exactly one of the two wins
        conn = await asyncpg.connect(db_url)
        try:
            stray = await conn.fetchval(
                "SELECT count(*) FROM deployments d JOIN prompts p ON p.id = d.prompt_id "
                "JOIN projects pr ON pr.id = p.project_id "
                "WHERE d.retired_at IS NULL AND NOT (d.environment = ANY(pr.environments))")
        finally:
            await conn.close()
        assert stray == 0
        if deployed:
            await undeploy(gql, t.token, t.prompt_id, env)
