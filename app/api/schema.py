"""The GraphQL schema: every domain's root fields, imported explicitly, plus limits and error handling.

A field of the Query, Mutation or Subscription type lives in ``app/api/<domain>/queries.py``,
``mutations.py`` or ``subscriptions.py``; the classes below are merged in this order (the field
order of the exported SDL).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from .core.extensions import CachedParser, MaskInternalErrors, RefuseBadCredentials, Schema
from .core.relay import NodeQuery, node_types
from .core.scalars import SCALAR_OVERRIDES
from .core.text import RefuseUnstorableLiterals, RefuseUnstorableVariables
from .deployments.mutations import DeploymentMutation
from .deployments.queries import DeploymentQuery
from .executions.mutations import ExecutionMutation
from .executions.subscriptions import ExecutionSubscription
from .experiments.mutations import ExperimentMutation
from .experiments.subscriptions import ExperimentSubscription
from .identity.mutations import IdentityMutation
from .identity.queries import IdentityQuery
from .models.mutations import ModelMutation
from .models.queries import ModelQuery
from .projects.mutations import ProjectMutation
from .projects.queries import ProjectQuery
from .prompts.mutations import PromptMutation
from .prompts.queries import PromptQuery
from .validations.mutations import ValidationMutation

if TYPE_CHECKING:
    from app.settings import Settings

Query = merge_types("Query", (NodeQuery, IdentityQuery, ProjectQuery, PromptQuery, DeploymentQuery, ModelQuery))
Mutation = merge_types("Mutation", (IdentityMutation, ProjectMutation, PromptMutation, DeploymentMutation,
                                    ValidationMutation, ExecutionMutation, ExperimentMutation, ModelMutation))
Subscription = merge_types("Subscription", (ExecutionSubscription, ExperimentSubscription))


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    from app.settings import Settings

    settings = settings or Settings()
    # Rule classes built once, so the validation cache (keyed on the document and the rules)
    # hits for repeated queries; extension instances are made per request (they hold state).
    rules: list[Any] = [
        query_depth_limiter.create_validator(settings.max_query_depth, None, None),
        max_aliases.create_validator(settings.max_aliases),
        RefuseUnstorableLiterals,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: CachedParser(maxsize=512),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=512),
        RefuseBadCredentials,
        RefuseUnstorableVariables,
        MaskInternalErrors,
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        # Node types reachable only through the Node interface must be listed too.
        types=node_types(),
        config=StrawberryConfig(auto_camel_case=True),
        scalar_overrides=SCALAR_OVERRIDES,
    )


#: The schema with default settings: what `promptstudio export-schema` writes.
schema = build_schema()
