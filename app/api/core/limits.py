"""The limits that keep one caller's GraphQL from taking the server down, as schema extensions.

In the order they apply to an operation:

1. ``MaxTokensLimiter`` (Strawberry's): the parser stops past PROMPTSTUDIO_MAX_TOKENS.
2. ``DocumentLimits``: a document with more field selections than PROMPTSTUDIO_MAX_SELECTIONS
   (fragments counted where they are spread), or more copies of one field at one place than
   PROMPTSTUDIO_MAX_REPEATED_SELECTIONS, is refused with QUERY_TOO_LARGE before it is validated,
   whose work grows faster than the document (``document_size``) — the largest even before it is
   parsed, from its text. Documents that pass are parsed and validated once and kept in a cache
   (``DocumentCache``, bounded by the length of the texts it keeps); refused ones are never kept,
   so a document refused once is refused again.
3. The validation rules: depth (PROMPTSTUDIO_MAX_QUERY_DEPTH), aliases (PROMPTSTUDIO_MAX_ALIASES).
4. ``LimitQueryCost``, when the operation is about to run with its variables: its cost
   (``cost.operation_cost``) over PROMPTSTUDIO_MAX_QUERY_COST is QUERY_TOO_COSTLY; then an operation
   costing at least PROMPTSTUDIO_RATE_LIMIT_THRESHOLD, or selecting a metered field (logIn, signUp,
   render, diff), spends its cost from the caller's token bucket (``rate_limit``), or is refused with
   RATE_LIMITED and ``retryAfter`` (over HTTP: 429 and Retry-After, see ``view.py``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    parse,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from app.services.principal import Principal

from .cost import operation_cost
from .document_size import as_written, measure
from .errors import QueryTooCostly, QueryTooLarge, RateLimited
from .rate_limit import RateLimiter


@dataclass
class Checked:
    """A query text, checked: its document and validation's errors ([] when valid; None until it ran),
    or, when it was refused or did not parse, no document and that error."""

    document: DocumentNode | None
    errors: list[GraphQLError] | None = None


class DocumentCache:
    """Checked documents by query text, the least recently used dropped first.

    Bounded by the total length of the texts rather than their number: a parsed document takes some
    120 bytes per character of its text (2 MB for 17 KB), and each of its objects is one more for every
    full garbage collection to scan while the whole process waits. Texts longer than an eighth of the
    bound are never kept.
    """

    def __init__(self, *, max_chars: int = 64_000, max_entries: int = 512):
        self.max_chars = max_chars
        self.max_entries = max_entries
        self.chars = 0
        self._entries: OrderedDict[str, Checked] = OrderedDict()

    def get(self, text: str) -> Checked | None:
        checked = self._entries.get(text)
        if checked is not None:
            self._entries.move_to_end(text)
        return checked

    def put(self, text: str, checked: Checked) -> None:
        if len(text) > self.max_chars // 8 or text in self._entries:
            return
        self._entries[text] = checked
        self.chars += len(text)
        while self.chars > self.max_chars or len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self.chars -= len(old)

    def __len__(self) -> int:
        return len(self._entries)


class DocumentLimits(SchemaExtension):
    """Parsing and validation (instead of Strawberry's ParserCache and ValidationCache), within the
    limits on the size of a document, with one cache."""

    def __init__(self, *, cache: DocumentCache, max_selections: int, max_repeated: int):
        super().__init__()
        self.cache = cache
        self.max_selections = max_selections
        self.max_repeated = max_repeated
        self.checked: Checked | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if text is not None and context.graphql_document is None:
            self.checked = self.cache.get(text) or self.check(text, context)
            # A refused document (or one that does not parse) is replaced by a stand-in, so that
            # Strawberry does not parse it again; its error is the validation's result below.
            context.graphql_document = self.checked.document or _stand_in(context)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        checked = self.checked
        if checked is not None:
            if checked.errors is None:
                assert checked.document is not None
                checked.errors = validate_document(context.schema._schema, checked.document,
                                                   context.validation_rules)
                self.cache.put(context.query or "", checked)
            # Strawberry validates only when no errors are set yet: these stand instead.
            context.pre_execution_errors = list(checked.errors)
        yield

    def check(self, text: str, context: ExecutionContext) -> Checked:
        max_tokens = context.parse_options.get("max_tokens")
        # Each field once, at most what `measure` counts: what is refused here is refused anyway.
        written = as_written(text, max_fields=self.max_selections, max_tokens=max_tokens)
        if written.too_many_tokens_at is not None:  # the parser's own error, without parsing
            return Checked(None, [GraphQLSyntaxError(Source(text), written.too_many_tokens_at,
                                                     f"Document contains more than {max_tokens} tokens. "
                                                     "Parsing aborted.")])
        if written.fields > self.max_selections:
            return Checked(None, [QueryTooLarge(
                f"This document has more than {self.max_selections:,} field selections; at most "
                f"{self.max_selections:,} are allowed (fragments count where they are spread). Split it "
                "into smaller operations.", maxSelections=self.max_selections)])
        try:
            document = parse(text, **context.parse_options)
        except GraphQLError as error:
            return Checked(None, [error])
        size = measure(document, stop_above=self.max_selections)
        if size.selections > self.max_selections:
            return Checked(None, [self.too_many(size.selections)])
        if size.repeated > self.max_repeated:
            return Checked(None, [QueryTooLarge(
                f"`{size.repeated_at}` is selected {size.repeated:,} times at the same place (fragments "
                f"counted where they are spread); at most {self.max_repeated:,} are allowed. Select it once.",
                repeated=size.repeated, maxRepeated=self.max_repeated, path=size.repeated_at)])
        return Checked(document)

    def too_many(self, selections: int) -> QueryTooLarge:
        return QueryTooLarge(
            f"This document has {selections:,} field selections (fragments counted where they are spread); "
            f"at most {self.max_selections:,} are allowed. Split it into smaller operations.",
            selections=selections, maxSelections=self.max_selections)


def _stand_in(context: ExecutionContext) -> DocumentNode:
    """A document of one operation of a type this request allows, named as the request asks (so that
    Strawberry's checks of the operation pass and the error set at validation is what the client gets)."""
    allowed = [t.value for t in context.allowed_operations]
    kind = "query" if "query" in allowed else allowed[0]
    name = context.operation_name
    return DocumentNode(definitions=(OperationDefinitionNode(
        operation=OperationType(kind), name=NameNode(value=name) if name else None, variable_definitions=(),
        directives=(), selection_set=SelectionSetNode(selections=(
            FieldNode(name=NameNode(value="__typename"), arguments=(), directives=()),))),))


def caller_key(principal: Principal) -> str:
    """Whose bucket an operation spends from: the API key, the user, or the client address."""
    if principal.api_key_id is not None:
        return f"api_key:{principal.api_key_id}"
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    return f"ip:{principal.ip_address or 'unknown'}"


class LimitQueryCost(SchemaExtension):
    """Refuses an operation over the cost budget, and spends the cost of expensive ones from the
    caller's rate limit, before anything runs."""

    def __init__(self, *, max_cost: int, threshold: int, limiter: RateLimiter):
        super().__init__()
        self.max_cost = max_cost
        self.threshold = threshold
        self.limiter = limiter

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            cost = operation_cost(context.schema._schema, context.graphql_document, context.operation_name,
                                  context.variables)
            if cost is not None:
                if cost.total > self.max_cost:
                    raise QueryTooCostly(cost.total, self.max_cost)
                if cost.metered or cost.total >= self.threshold:
                    principal = getattr(context.context, "principal", None) or Principal.anonymous()
                    wait = self.limiter.spend(caller_key(principal), cost.total)
                    if wait:
                        raise RateLimited(cost.total, max(1, math.ceil(wait)))
        yield
