"""The GraphQL schema: the root types of every domain merged, plus limits and error masking.

Each domain module contributes ``*Query``, ``*Mutation`` and ``*Subscription`` classes; they are
merged here, so domains do not edit each other's files.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import strawberry
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache, max_aliases, query_depth_limiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from graphql.validation import NoSchemaIntrospectionCustomRule

from .extensions import MaskInternalErrors
from .root import NodeQuery

if TYPE_CHECKING:
    from app.settings import Settings

QUERIES: list[type] = [NodeQuery]
MUTATIONS: list[type] = []
SUBSCRIPTIONS: list[type] = []


def _collect() -> None:
    # Domain modules register their root classes here (import order = field order in the SDL).
    from .domains import register_all

    register_all(QUERIES, MUTATIONS, SUBSCRIPTIONS)


_collect()

Query = merge_types("Query", tuple(QUERIES))
Mutation = merge_types("Mutation", tuple(MUTATIONS)) if MUTATIONS else None
Subscription = merge_types("Subscription", tuple(SUBSCRIPTIONS)) if SUBSCRIPTIONS else None


def build_schema(settings: "Settings | None" = None) -> strawberry.Schema:
    from app.settings import Settings

    settings = settings or Settings()
    # Rule classes built once, so the validation cache (keyed on the document and the rules)
    # hits for repeated queries; extension instances are made per request (they hold state).
    rules = [
        query_depth_limiter.create_validator(settings.max_query_depth, None, None),
        max_aliases.create_validator(settings.max_aliases),
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=512),
        MaskInternalErrors,
    ]
    from .domains import extra_types

    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=extra_types(),
        config=StrawberryConfig(auto_camel_case=True),
    )


#: The schema with default settings: what `promptstudio export-schema` writes.
schema = build_schema()
