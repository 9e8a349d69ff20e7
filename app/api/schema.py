"""The GraphQL schema: every domain's root fields, imported explicitly, plus limits and error handling.

A field of the Query, Mutation or Subscription type lives in ``app/api/<domain>/queries.py``,
``mutations.py`` or ``subscriptions.py``; the classes below are merged in this order (the field
order of the exported SDL).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, max_aliases, query_depth_limiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from .core.extensions import MaskInternalErrors, RefuseBadCredentials, Schema
from .core.limits import DocumentCache, DocumentLimits, LimitQueryCost
from .core.live import SharedEventExecutor
from .core.rate_limit import RateLimiter
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
from .traces.mutations import TraceMutation
from .traces.subscriptions import TraceSubscription
from .validations.mutations import ValidationMutation

if TYPE_CHECKING:
    from app.settings import Settings

Query = merge_types("Query", (NodeQuery, IdentityQuery, ProjectQuery, PromptQuery, DeploymentQuery, ModelQuery))
Mutation = merge_types("Mutation", (IdentityMutation, ProjectMutation, PromptMutation, DeploymentMutation,
                                    ValidationMutation, ExecutionMutation, ExperimentMutation, ModelMutation,
                                    TraceMutation))
Subscription = merge_types("Subscription", (ExecutionSubscription, ExperimentSubscription, TraceSubscription))


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    from app.settings import Settings

    settings = settings or Settings()
    # Extension instances are made per request (they hold state); what they share is made here, once
    # per schema (i.e. per server process): the rules, the cache of checked documents, the buckets.
    rules: list[Any] = [
        query_depth_limiter.create_validator(settings.max_query_depth, None, None),
        max_aliases.create_validator(settings.max_aliases),
        RefuseUnstorableLiterals,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    documents = DocumentCache()
    limiter = RateLimiter(settings.rate_limit_capacity, settings.rate_limit_refill_per_second)
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: DocumentLimits(cache=documents, max_selections=settings.max_selections,
                               max_repeated=settings.max_repeated_selections),
        RefuseBadCredentials,
        RefuseUnstorableVariables,
        lambda: LimitQueryCost(max_cost=settings.max_query_cost, threshold=settings.rate_limit_threshold,
                               limiter=limiter),
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
        # a shared feed's event is executed once per distinct selection, variables and principal
        execution_context_class=SharedEventExecutor,
    )


#: The schema with default settings: what `promptstudio export-schema` writes.
schema = build_schema()
