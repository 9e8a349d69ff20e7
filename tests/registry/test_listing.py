"""Project.prompts (filters, orders, keyset pages), Project.prompt(name), Project.tags."""
from __future__ import annotations

from tests.registry.util import UPDATE, create_prompt, make_world, ok

LIST = """query($f: PromptFilter, $o: PromptOrder, $first: Int, $after: String) { project(slug: "alpha") {
  prompts(first: $first, after: $after, filter: $f, orderBy: $o) { totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { name } } } } }"""


async def _names(gql, token, f=None, o=None, first=None, after=None, check=True):
    body = await gql(LIST, {"f": f, "o": o, "first": first, "after": after}, token=token, check=check)
    if not check:
        return body
    conn = body["data"]["project"]["prompts"]
    return [e["node"]["name"] for e in conn["edges"]], conn


async def test_filters(gql):
    w = await make_world(gql)
    await create_prompt(gql, w.alice, w.a, "support/refund", tags=["support", "billing"], category="cs",
                        description="Replies about a 100% refund")
    await create_prompt(gql, w.alice, w.a, "support/shipping", tags=["Support"], category="cs",
                        description="Where is my parcel")
    await create_prompt(gql, w.alice, w.a, "eng/code_review", tags=["eng"], category="eng")
    await create_prompt(gql, w.alice, w.a, "engxcode-review", tags=["eng"])
    old = (await create_prompt(gql, w.alice, w.a, "old/retired", tags=["support"]))["prompt"]
    ok(await gql(UPDATE, {"i": {"id": old["id"], "status": "ARCHIVED"}}, token=w.alice), "updatePrompt")
    pub = (await create_prompt(gql, w.alice, w.a, "pub", tags=["billing"]))["prompt"]
    ok(await gql(UPDATE, {"i": {"id": pub["id"], "status": "PUBLISHED"}}, token=w.alice), "updatePrompt")
    asc = {"field": "NAME", "direction": "ASC"}

    names, conn = await _names(gql, w.alice, o=asc)
    assert names == ["eng/code_review", "engxcode-review", "pub", "support/refund", "support/shipping"]
    assert conn["totalCount"] == 5
    assert (await _names(gql, w.alice, {"status": ["ARCHIVED"]}, asc))[0] == ["old/retired"]
    assert (await _names(gql, w.alice, {"status": ["PUBLISHED", "ARCHIVED"]}, asc))[0] == ["old/retired", "pub"]
    assert (await _names(gql, w.alice, {"tags": [" SUPPORT "]}, asc))[0] == ["support/refund", "support/shipping"]
    assert (await _names(gql, w.alice, {"tags": ["support", "billing"]}, asc))[0] == ["support/refund"]
    assert (await _names(gql, w.alice, {"tags": ["support"], "status": ["DRAFT", "ARCHIVED"]}, asc))[0] == [
        "old/retired", "support/refund", "support/shipping"]
    assert (await _names(gql, w.alice, {"category": "cs"}, asc))[0] == ["support/refund", "support/shipping"]
    # search: case-insensitive on name and description; LIKE wildcards are literal.
    assert (await _names(gql, w.alice, {"search": "PARCEL"}, asc))[0] == ["support/shipping"]
    assert (await _names(gql, w.alice, {"search": "code_"}, asc))[0] == ["eng/code_review"]
    assert (await _names(gql, w.alice, {"search": "100%"}, asc))[0] == ["support/refund"]
    assert (await _names(gql, w.alice, {"search": "%"}, asc))[0] == ["support/refund"]
    _, conn = await _names(gql, w.alice, {"search": "support", "category": "cs"}, asc)
    assert conn["totalCount"] == 2


async def test_orders_and_keyset_pages(gql):
    w = await make_world(gql)
    created = []
    for name in ("delta", "alpha", "echo", "charlie", "bravo"):
        created.append((await create_prompt(gql, w.alice, w.a, name))["prompt"])
    by_created = [p["name"] for p in created]

    # Default: newest first.
    assert (await _names(gql, w.alice))[0] == by_created[::-1]
    assert (await _names(gql, w.alice, o={"field": "CREATED_AT", "direction": "ASC"}))[0] == by_created
    assert (await _names(gql, w.alice, o={"field": "NAME", "direction": "DESC"}))[0] == [
        "echo", "delta", "charlie", "bravo", "alpha"]
    ok(await gql(UPDATE, {"i": {"id": created[0]["id"], "description": "touched"}}, token=w.alice), "updatePrompt")
    assert (await _names(gql, w.alice, o={"field": "UPDATED_AT", "direction": "DESC"}))[0][0] == "delta"
    assert (await _names(gql, w.alice, o={"field": "UPDATED_AT", "direction": "ASC"}))[0][-1] == "delta"

    for order, expected in (({"field": "NAME", "direction": "ASC"}, ["alpha", "bravo", "charlie", "delta", "echo"]),
                            ({"field": "CREATED_AT", "direction": "DESC"}, by_created[::-1])):
        seen, after, pages = [], None, 0
        while True:
            names, conn = await _names(gql, w.alice, o=order, first=2, after=after)
            pages += 1
            seen += names
            assert conn["totalCount"] == 5
            assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert seen == expected and pages == 3

    # A cursor of another order, garbage, or a negative first: a GraphQL error, not a crash.
    _, conn = await _names(gql, w.alice, o={"field": "NAME", "direction": "ASC"}, first=1)
    for after, first in ((conn["pageInfo"]["endCursor"], None), ("nonsense", None), (None, -1)):
        body = await _names(gql, w.alice, o={"field": "CREATED_AT", "direction": "ASC"}, after=after, first=first,
                            check=False)
        assert body["errors"] and body["errors"][0]["message"] != "Internal server error", body
    assert len((await _names(gql, w.alice, first=500))[0]) == 5


async def test_prompt_by_name_and_tags(gql):
    w = await make_world(gql)
    await create_prompt(gql, w.alice, w.a, "a/b", tags=["Zeta", "alpha"])
    arch = (await create_prompt(gql, w.alice, w.a, "c", tags=["mid", "alpha"]))["prompt"]
    ok(await gql(UPDATE, {"i": {"id": arch["id"], "status": "ARCHIVED"}}, token=w.alice), "updatePrompt")
    await create_prompt(gql, w.bob, w.b, "a/b", tags=["other-tenant"])
    q = """query($s: String!) { project(slug: $s) { tags prompt(name: "a/b") { name tags project { slug } }
      missing: prompt(name: "nope") { name } } }"""
    data = (await gql(q, {"s": "alpha"}, token=w.alice))["data"]["project"]
    assert data["tags"] == ["alpha", "mid", "zeta"]
    assert data["prompt"] == {"name": "a/b", "tags": ["zeta", "alpha"], "project": {"slug": "alpha"}}
    assert data["missing"] is None
    assert (await gql(q, {"s": "beta"}, token=w.bob))["data"]["project"]["tags"] == ["other-tenant"]
