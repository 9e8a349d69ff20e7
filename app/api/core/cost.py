"""What an operation costs, computed from the document and the variables before it runs.

The model, in points:

* every field costs 1 (``__typename`` too), plus the weight of an expensive field (``COSTS``);
* a field with a selection costs its own points plus what is under it times the number of items it
  stands for: for a connection, the page it asks for (``first``: its default when left out,
  ``DEFAULT_PAGE`` when null, at most ``MAX_PAGE``) multiplies what is under its ``edges`` and
  ``nodes``; a list with ``first`` (searchPrompts) is that many items; ``nodes(ids:)`` is as many as
  the ids; introspection lists (``__schema { types { fields } }``) are as long as they are on average
  in this schema; any other list is taken to hold ``LIST_SIZE`` items;
* fragments count where they are spread, aliases as written, ``@skip``/``@include`` are ignored.

It is an upper bound of the work (a page of 100 may hold 3 rows), computed in time linear in the
document. ``COSTS`` is the one place that says which fields are expensive: a new one is one line.
Fields marked ``metered`` always spend from the caller's rate limit, whatever the operation costs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    SelectionSetNode,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_list_type,
    value_from_ast,
)
from graphql.execution.values import get_variable_values
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.utilities import get_operation_ast

from .pagination import DEFAULT_PAGE, MAX_PAGE


@dataclass(frozen=True)
class FieldCost:
    #: Points of the field itself (every field costs at least 1).
    weight: int = 1
    #: Always spends from the caller's rate limit (not only in operations above the threshold).
    metered: bool = False
    #: The list argument whose length is the number of items under the field (``nodes(ids:)``).
    items: str | None = None


#: Expensive fields, by "Type.field". Weights are rough: in plain fields' worth of work.
COSTS: Mapping[str, FieldCost] = {
    # Renders a template written by a user with variables from the request: usually a millisecond,
    # but up to 2 s of CPU (app/templating/limits.py), so a request may render 24 times at most and
    # a caller some 30 times a minute with the default limits.
    "PromptVersion.render": FieldCost(1_000, metered=True),
    # Canonical text of two versions and a line diff of them (difflib).
    "PromptVersion.diff": FieldCost(250, metered=True),
    # Renders the prompt to check the variables, then a transaction that queues a job. The
    # applications' way to run prompts: one call stays under the rate limit's threshold.
    "Mutation.executePrompt": FieldCost(200),
    # argon2id, costly by design (~0.3 s of CPU and 64 MiB each): a password guess always spends.
    "Mutation.logIn": FieldCost(2_500, metered=True),
    "Mutation.signUp": FieldCost(2_500, metered=True),
    # Full-text and trigram search over a project's prompts.
    "Query.searchPrompts": FieldCost(50),
    # Aggregates (percentiles) over a version's executions.
    "PromptVersion.stats": FieldCost(20),
    "Prompt.splitReport": FieldCost(20),
    # An experiment's statistics: aggregates and arrays over all its runs' scores, then numpy/scipy (computed
    # once per experiment and request, whoever asks; some 100 ms at 100,000 runs).
    "ExperimentVariant.stats": FieldCost(50),
    "Experiment.winner": FieldCost(50),
    # Renders every variant for every dataset item in the sandbox and queues up to
    # PROMPTSTUDIO_EXPERIMENT_MAX_RUNS runs: always spends from the caller's rate limit.
    "Mutation.startExperiment": FieldCost(1_000, metered=True),
    # Checks and inserts up to 10,000 items.
    "Mutation.addDatasetItems": FieldCost(200),
    # Checks its config in the sandbox (patterns, schemas, expressions).
    "Mutation.createEvaluator": FieldCost(20),
    # The applications' hot path: a few indexed reads (deployments, bucket). Kept cheap on purpose.
    "Query.resolvePrompt": FieldCost(5),
    "Query.nodes": FieldCost(items="ids"),
}

_PLAIN = FieldCost()

#: Items assumed for a list that takes no page size (Prompt.deployments, Execution.feedback, ...).
LIST_SIZE = 10


@dataclass(frozen=True)
class Cost:
    total: int
    #: The metered fields ("Type.field") the operation selects.
    metered: frozenset[str]


def operation_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                   variables: dict[str, Any] | None) -> Cost | None:
    """The cost of the operation that ``operation_name`` picks; None when there is no such operation
    (execution reports that)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    # Variables as execution will coerce them; when they do not coerce, execution refuses the
    # operation before any resolver runs, and arguments taken from them count at their defaults.
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    values = getattr(coerced, "coerced", coerced)
    walker = _Walker(schema, document, values if isinstance(values, dict) else {})
    total = walker.selection_set(operation.selection_set, root, None)
    return Cost(math.ceil(total), frozenset(walker.metered))


class _Walker:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]):
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.sizes = _introspection_sizes(schema)
        self.memo: dict[tuple[str, int | None, int], float] = {}
        self.active: set[str] = set()
        self.metered: set[str] = set()
        #: How many `ofType` deep the walk is (introspection of wrapped types).
        self.wrapped = 0

    def selection_set(self, selection_set: SelectionSetNode, parent: GraphQLNamedType, page: int | None) -> float:
        """Points of a selection set on ``parent``; ``page`` is the page size when ``parent`` is a
        connection (its list fields hold that many items)."""
        total = 0.0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(selection.selection_set, type_ or parent, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, parent, page)
        return total

    def fragment(self, name: str, parent: GraphQLNamedType, page: int | None) -> float:
        key = (name, page, self.wrapped)
        if key in self.memo:
            return self.memo[key]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return 0  # refused by validation, which ran before
        type_ = self.schema.get_type(fragment.type_condition.name.value) or parent
        self.active.add(name)
        try:
            self.memo[key] = points = self.selection_set(fragment.selection_set, type_, page)
        finally:
            self.active.discard(name)
        return points

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None) -> float:
        name = node.name.value
        definition = self.definition(parent, name)
        if definition is None:  # __typename, or a field validation refused
            return 1
        key = f"{parent.name}.{name}"
        spec = COSTS.get(key, _PLAIN)
        if spec.metered:
            self.metered.add(key)
        if node.selection_set is None:
            return spec.weight
        inner = get_named_type(definition.type)
        is_list = is_list_type(get_nullable_type(definition.type))
        items: float = 1
        inner_page = None
        if "first" in definition.args:
            size = self.page_size(node, definition)
            items, inner_page = (size, None) if is_list else (1, size)
        elif spec.items is not None:
            items = self.count_items(node, definition, spec.items)
        elif is_list:
            items = page if page is not None else self.sizes.lists.get(key, LIST_SIZE)
        outer = self.wrapped
        if key == "__Type.ofType":
            # `ofType` is null past the deepest wrapping in this schema (`[X!]!` is three deep)
            self.wrapped += 1
            if self.wrapped > self.sizes.max_wrapping:
                items = 0
        else:
            self.wrapped = 0
        try:
            if not items:
                return spec.weight
            return spec.weight + items * self.selection_set(node.selection_set, inner, inner_page)
        finally:
            self.wrapped = outer

    def definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return parent.fields.get(name)
        return None

    def argument(self, node: FieldNode, definition: GraphQLField, name: str) -> Any:
        """The argument's value as execution will see it (its default when it is left out)."""
        arg_def = definition.args[name]
        for arg in node.arguments or ():
            if arg.name.value == name:
                value = value_from_ast(arg.value, arg_def.type, self.variables)
                return arg_def.default_value if value is Undefined else value
        return arg_def.default_value

    def page_size(self, node: FieldNode, definition: GraphQLField) -> int:
        first = self.argument(node, definition, "first")
        if first is None or first is Undefined:
            return DEFAULT_PAGE
        if not isinstance(first, int):
            return MAX_PAGE
        return max(0, min(first, MAX_PAGE))

    def count_items(self, node: FieldNode, definition: GraphQLField, argument: str) -> int:
        if argument not in definition.args:
            return MAX_PAGE
        value = self.argument(node, definition, argument)
        if isinstance(value, list | tuple):
            return len(value)
        return 0 if value is None or value is Undefined else 1


@dataclass(frozen=True)
class _SchemaSizes:
    #: Mean length of each introspection list ("__Type.fields": fields per type, all types counted).
    lists: dict[str, float]
    #: The most wrappers (list, non-null) around one type reference: `[X!]!` is 3.
    max_wrapping: int


@lru_cache(maxsize=8)
def _introspection_sizes(schema: GraphQLSchema) -> _SchemaSizes:
    """How long the introspection lists of ``schema`` are on average, so that a query of the whole
    schema (GraphiQL's) costs about the fields it resolves, and one that walks it in circles
    (``types { fields { type { fields ... } } }``) multiplies as it should."""
    types = list(schema.type_map.values())
    composite = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]
    fields = [f for t in composite for f in t.fields.values()]
    arguments = [a for f in fields for a in f.args.values()] + [a for d in schema.directives for a in d.args.values()]
    references = ([f.type for f in fields] + [a.type for a in arguments]
                  + [f.type for t in inputs for f in t.fields.values()])

    def depth(type_: Any) -> int:
        n = 0
        while hasattr(type_, "of_type"):
            type_, n = type_.of_type, n + 1
        return n

    def mean(total: int, count: int) -> float:
        return total / count if count else 0.0

    n = len(types)
    return _SchemaSizes(
        lists={
            "__Schema.types": n,
            "__Schema.directives": len(schema.directives),
            "__Type.fields": mean(len(fields), n),
            "__Type.interfaces": mean(sum(len(t.interfaces) for t in composite), n),
            "__Type.possibleTypes": mean(sum(len(schema.get_possible_types(t)) for t in types
                                             if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)), n),
            "__Type.enumValues": mean(sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType)), n),
            "__Type.inputFields": mean(sum(len(t.fields) for t in inputs), n),
            "__Field.args": mean(sum(len(f.args) for f in fields), len(fields)),
            "__Directive.args": mean(sum(len(d.args) for d in schema.directives), len(schema.directives)),
        },
        max_wrapping=max((depth(t) for t in references), default=0),
    )
