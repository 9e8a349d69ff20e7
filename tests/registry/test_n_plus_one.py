"""No N+1: listing 50 prompts with their relations costs as many SQL statements as listing 5."""
from __future__ import annotations

import asyncio

from tests.registry.util import COMMIT, CREATE, FORK, ROLLBACK, make_world, ok

LISTING = """query { project(slug: "alpha") { prompts(first: 50) { totalCount pageInfo { hasNextPage }
  nodes { id name tags status versionCount project { slug }
    createdBy { id username }
    latestVersion { number contentHash isLatest author { id } }
    versions(first: 5) { totalCount nodes { number isLatest prompt { name } previous { number }
      restoredFrom { number } deployments { environment } } }
    deployments { environment trafficPercentage version { number } deployedBy { id } }
    validations { name type isActive }
    forkedFrom { number prompt { name } } } } } }"""

#: Authentication: none (the token is cached, lastUsedAt written behind: app.services.hot); the project by
#: slug, the viewer's role, then one statement per relation and level: the prompts page and its totalCount, users (creators,
#: authors, deployers together) and which of them the viewer may see (relations are governed by the
#: rule of what they return), latest versions, versions pages, active deployments of prompts,
#: validations, versions by id (forkedFrom), active deployments of versions, previous versions,
#: versions by id (restoredFrom). Prompt.project and PromptVersion.prompt come from the listing.
EXPECTED_STATEMENTS = 14


async def _prompt_with_history(gql, token, project, name):
    p = ok(await gql(CREATE, {"i": {"projectId": project, "name": name, "content": {"template": f"{name} {{{{x}}}}"}}},
                     token=token), "createPrompt")
    ok(await gql(COMMIT, {"i": {"promptId": p["prompt"]["id"], "content": {"template": f"{name} v2 {{{{x}}}}"}}},
                 token=token), "createPromptVersion")
    return p


async def test_listing_statement_count_does_not_grow_with_prompts(gql, sql_counter):
    w = await make_world(gql)

    # 5 prompts with every relation present at least once: versions, a rollback, a fork, a
    # deployment and a validation.
    first = [await _prompt_with_history(gql, w.alice, w.a, f"p{i}") for i in range(4)]
    ok(await gql(ROLLBACK, {"i": {"promptId": first[0]["prompt"]["id"], "toVersion": 1}}, token=w.alice),
       "rollbackPrompt")
    ok(await gql(FORK, {"i": {"versionId": first[0]["version"]["id"], "projectId": w.a, "name": "p-fork"}},
                 token=w.alice), "forkPrompt")
    ok(await gql("""mutation($i: DeployPromptVersionInput!) { deployPromptVersion(input: $i) {
        userErrors { code message } } }""", {"i": {"versionId": first[1]["version"]["id"],
                                                    "environment": "production"}}, token=w.alice),
       "deployPromptVersion")
    ok(await gql("""mutation($i: CreateValidationInput!) { createValidation(input: $i) {
        userErrors { code message } } }""", {"i": {"promptId": first[2]["prompt"]["id"], "name": "json",
                                                   "type": "JSON_SCHEMA", "config": {"schema": {"type": "object"}}}},
                 token=w.alice), "createValidation")

    with sql_counter() as small:
        body = await gql(LISTING, token=w.alice)
    nodes = body["data"]["project"]["prompts"]["nodes"]
    assert len(nodes) == 5
    assert any(n["forkedFrom"] for n in nodes) and any(n["deployments"] for n in nodes)
    assert any(n["validations"] for n in nodes)
    assert any(v["restoredFrom"] for n in nodes for v in n["versions"]["nodes"])

    # 45 more (10 at a time).
    for start in range(0, 45, 10):
        await asyncio.gather(*(_prompt_with_history(gql, w.alice, w.a, f"q{i}") for i in range(start, min(start + 10, 45))))

    with sql_counter() as large:
        body = await gql(LISTING, token=w.alice)
    nodes = body["data"]["project"]["prompts"]["nodes"]
    assert len(nodes) == 50 and body["data"]["project"]["prompts"]["totalCount"] == 50
    assert sum(len(n["versions"]["nodes"]) for n in nodes) == 2 * 49 + 1 + 1  # p-fork has one, p0 three

    assert large.count == small.count, (small.count, large.count, large.statements)
    # The number itself (authentication included), so that a new per-request query is noticed too.
    assert large.count == EXPECTED_STATEMENTS, large.statements
