"""The pieces of the GraphQL limits on their own: document size, cost model, token buckets, the cache."""
from __future__ import annotations

import pytest
from graphql import GraphQLSyntaxError, Visitor, get_introspection_query, parse, visit

from app.api.core.cost import COSTS, operation_cost
from app.api.core.document_size import as_written, measure
from app.api.core.limits import Checked, DocumentCache
from app.api.core.rate_limit import RateLimiter
from app.api.schema import schema
from app.settings import Settings

GRAPHIQL = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                   schema_description=True, input_value_deprecation=True)

DOCUMENTS = [
    GRAPHIQL,
    "{ __typename }",
    "{ on: viewer { on: id } }",
    '{ a(x: """ block { string } with \\""" escaped """) { b } }',
    'mutation { logIn(input: {login: "a", password: "b\\"c}"}) { token user { id } userErrors { code } } }',
    """query Q($a: Int = 3, $b: In = {x: "}{ y", z: [1, 2.5e3, -7]}) @dir(x: "q") {
         a: viewer @skip(if: $a) { id ...F ... on User { username } ... @include(if: true) { id } }
         node(id: "x{y}") { __typename } }  # a comment { a b c }
       fragment F on User { b: id, c: username }""",
    "subscription S { executionUpdated(id: $id) { type execution { id status } } }",
    "query A { viewer { id } } query B { viewer { ...G } } fragment G on User { username } fragment H on User { id }",
]


def _fields(document) -> int:
    count = 0

    class Fields(Visitor):
        def enter_field(self, *_):
            nonlocal count
            count += 1

    visit(document, Fields())
    return count


@pytest.mark.parametrize("text", DOCUMENTS)
def test_fields_as_written_are_the_parsers_and_at_most_the_measure(text):
    document = parse(text)
    written = as_written(text, max_fields=10_000).fields
    assert written == _fields(document) <= measure(document, stop_above=10_000).selections


def test_counting_from_the_text_stops_past_the_limit_and_counts_tokens_as_the_parser():
    aliases = lambda n: "{" + " ".join(f"a{i}: __typename" for i in range(n)) + "}"  # noqa: E731
    assert as_written(aliases(300), max_fields=300).fields == 300
    assert as_written(aliases(301), max_fields=300).fields == 301
    assert as_written(aliases(5000), max_fields=300).fields == 301  # stopped there
    text = DOCUMENTS[5]
    for limit in range(1, 80):
        try:
            parse(text, max_tokens=limit)
            expected = None
        except GraphQLSyntaxError as error:
            expected = error.positions[0]
        assert as_written(text, max_fields=100, max_tokens=limit).too_many_tokens_at == expected, limit


def test_measure_expands_fragments_and_finds_repeated_fields():
    assert measure(parse(GRAPHIQL), stop_above=1000).selections == 229
    bomb = " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    size = measure(parse("{ viewer { ...F0 } } " + bomb + " fragment F40 on User { id }"), stop_above=300)
    assert size.selections == 2**40 + 1 and size.repeated == 0  # not walked: over the limit
    size = measure(parse("{ viewer { ...A ...B id } } fragment A on User { id } fragment B on User { id }"),
                   stop_above=300)
    assert (size.selections, size.repeated, size.repeated_at) == (4, 3, "viewer.id")
    cycle = measure(parse("{ viewer { ...A } } fragment A on User { id ...B } fragment B on User { ...A }"),
                    stop_above=300)
    assert cycle.selections == 2  # the cycle is validation's to report


def cost(text: str, variables: dict | None = None) -> int:
    result = operation_cost(schema._schema, parse(text), None, variables)
    assert result is not None
    return result.total


def test_the_cost_model():
    assert cost("{ __typename }") == 1
    assert cost("{ viewer { id username } }") == 3
    # A connection's page multiplies its edges and nodes, not its pageInfo or totalCount.
    assert cost("{ projects { nodes { id } pageInfo { hasNextPage } totalCount } }") == 1 + (1 + 20) + 2 + 1
    assert cost("query($n: Int) { projects(first: $n) { edges { node { id } } } }", {"n": 5}) == 1 + 1 + 5 * 2
    assert cost("query($n: Int) { projects(first: $n) { nodes { id } } }", {"n": None}) == 1 + 1 + 20
    assert cost("{ projects(first: 1000) { nodes { id } } }") == 1 + 1 + 100
    assert cost("{ projects(first: -1) { nodes { id } } }") == 2  # refused when it runs
    # Pages nest; a field's own default page size counts when `first` is left out (logs: 50).
    nested = "{ projects(first: 10) { nodes { prompts(first: 10) { nodes { name } } } } }"
    assert cost(nested) == 1 + 1 + 10 * (1 + 1 + 10 * 1)
    assert cost('{ node(id: "x") { ... on Execution { logs { nodes { message } } } } }') == 1 + 1 + 1 + 50
    # A list with `first` is that many items; nodes(ids:) as many as the ids; other lists 10.
    assert cost('{ searchPrompts(projectId: "p", query: "q") { score } }') == 50 + 10 * 1
    assert cost("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a", "b", "c"]}) == 1 + 3
    assert cost('{ node(id: "x") { ... on Prompt { deployments { id } } } }') == 1 + 1 + 10
    # Weights, metered fields, fragments as spread, aliases as written.
    render = "render(variables: {}) { text }"
    result = operation_cost(schema._schema, parse(
        f'{{ node(id: "v") {{ ...R ...R }} a: node(id: "w") {{ ...R }} }} fragment R on PromptVersion {{ {render} }}'),
        None, {})
    assert result is not None and result.metered == {"PromptVersion.render"}
    assert result.total == (1 + 2 * (1000 + 1)) + (1 + 1000 + 1)
    assert COSTS["Mutation.logIn"].metered and COSTS["Mutation.signUp"].metered


def test_introspection_costs_about_what_it_resolves_and_walking_in_circles_multiplies():
    # GraphiQL's schema query: some 22,000 points with this schema; it must stay well within the default
    # budget (room for the schema to grow), or GraphiQL stops working.
    assert 9_000 < cost(GRAPHIQL) < Settings().max_query_cost * 0.6
    def circles(n: int) -> str:
        inner = "name"
        for _ in range(n):
            inner = f"fields {{ type {{ ofType {{ {inner} }} }} }}"
        return "{ __schema { types { " + inner + " } } }"

    # Each level multiplies (by the average number of fields a type has, which grows with the schema), and a
    # few levels are past the default budget.
    costs = [cost(circles(n)) for n in range(2, 6)]
    assert all(later > 2 * earlier for earlier, later in zip(costs, costs[1:]))
    assert costs[-1] > Settings().max_query_cost


def test_token_buckets():
    now = [0.0]
    limiter = RateLimiter(100, 10, max_buckets=3, clock=lambda: now[0])
    assert limiter.spend("a", 60) == 0
    assert limiter.spend("a", 60) == pytest.approx(2.0)  # 40 left: 20 more take 2 s; nothing was taken
    assert limiter.level("a") == 40
    now[0] = 2.0
    assert limiter.spend("a", 60) == 0 and limiter.level("a") == 0
    assert limiter.spend("b", 1_000) == 0  # more than the capacity: a full bucket is emptied
    assert limiter.spend("b", 1) == pytest.approx(0.1)
    # Full buckets are forgotten; past max_buckets the least recently used go too.
    now[0] = 100.0
    limiter.spend("c", 1)
    assert len(limiter) == 1  # a and b had refilled
    for key in "defg":
        limiter.spend(key, 1)
    assert len(limiter) == 3 and limiter.level("c") == 100  # c was dropped (and is full again)


def test_the_document_cache_is_bounded_by_the_length_of_its_texts():
    cache = DocumentCache(max_chars=800, max_entries=10)
    document = parse("{ __typename }")
    cache.put("x" * 101, Checked(document, []))  # longer than an eighth of the bound: not kept
    assert len(cache) == 0
    for i in range(10):
        cache.put(f"{i}" * 100, Checked(document, []))
    assert len(cache) == 8 and cache.chars == 800
    assert cache.get("0" * 100) is None and cache.get("9" * 100) is not None
