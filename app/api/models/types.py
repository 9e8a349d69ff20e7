"""ModelConfig, ProviderInfo, the model settings of a prompt version or an execution, LlmUsage (one model call's
usage and cost) and the cost report."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.services import cost_report
from app.services.cost_report import CostDimension, TimeBucket

from ..core.relay import Node, global_id, node, related

if TYPE_CHECKING:
    from ..executions.types import Execution
    from ..prompts.types import Prompt, PromptVersion
    from ..traces.types import Span

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.prompts.types")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.prompts.types")]
ExecutionRef = Annotated["Execution", strawberry.lazy("app.api.executions.types")]
SpanRef = Annotated["Span", strawberry.lazy("app.api.traces.types")]


@node(models.ModelConfig)
@strawberry.type(description="A model's prices (US dollars per million tokens) from effectiveFrom on. A price "
                             "change is a new row, so costs already recorded never change.")
class ModelConfig(Node):
    id: strawberry.ID
    provider: str
    model_id: str
    display_name: str
    context_length: int | None
    max_output_tokens: int | None
    supports_streaming: bool
    supports_tools: bool
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None
    effective_from: datetime
    is_active: bool
    row: strawberry.Private[models.ModelConfig]

    @classmethod
    def from_row(cls, row: models.ModelConfig) -> ModelConfig:
        return cls(id=global_id(cls, row.id), provider=row.provider, model_id=row.model_id,
                   display_name=row.display_name, context_length=row.context_length,
                   max_output_tokens=row.max_output_tokens, supports_streaming=row.supports_streaming,
                   supports_tools=row.supports_tools, input_price_per_million=row.input_price_per_million,
                   output_price_per_million=row.output_price_per_million,
                   cached_input_price_per_million=row.cached_input_price_per_million,
                   effective_from=row.effective_from, is_active=row.is_active, row=row)


@strawberry.type
class ProviderInfo:
    name: str
    configured: bool = strawberry.field(description=(
        "Whether this project has what it needs to call the provider: a stored credential, or a key in the "
        "server's environment (echo needs none)."))
    supports_streaming: bool
    display_name: str
    description: str
    requires_api_key: bool
    has_stored_credential: bool = strawberry.field(description="A credential is stored for this project.")


@strawberry.type
class ModelSettings:
    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    extra: JSON | None = strawberry.field(default=None,
                                          description="Provider-specific parameters passed through as they are.")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelSettings | None:
        if not data:
            return None
        return cls(provider=data.get("provider"), model=data.get("model"), temperature=data.get("temperature"),
                   max_tokens=data.get("maxTokens"), top_p=data.get("topP"), stop=data.get("stop"),
                   extra=data.get("extra"))


@strawberry.input
class ModelSettingsInput:
    provider: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    temperature: float | None = strawberry.UNSET
    max_tokens: int | None = strawberry.UNSET
    top_p: float | None = strawberry.UNSET
    stop: list[str] | None = strawberry.UNSET
    extra: JSON | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        """The settings given (camelCase keys as stored); fields left out or null are not included."""
        values = {"provider": self.provider, "model": self.model, "temperature": self.temperature,
                  "maxTokens": self.max_tokens, "topP": self.top_p, "stop": self.stop, "extra": self.extra}
        return {k: v for k, v in values.items() if v is not strawberry.UNSET and v is not None}


# ------------------------------------------------------------------ usage and cost


@node(models.LlmUsage)
@strawberry.type(description="One model call: its tokens and its cost at the prices in force when it was made (or as "
                             "the span that reported it said). Made by executions and by ingested LLM spans.")
class LlmUsage(Node):
    id: strawberry.ID
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cached_input_tokens: int = strawberry.field(description="Of the input tokens, those served from the provider's "
                                                            "prompt cache (priced at the cached-input price).")
    input_cost_usd: Decimal
    output_cost_usd: Decimal
    total_cost_usd: Decimal
    latency_ms: int | None
    end_user_id: str | None
    created_at: datetime = strawberry.field(description="When the call was made.")
    row: strawberry.Private[models.LlmUsage]

    @classmethod
    def from_row(cls, row: models.LlmUsage) -> LlmUsage:
        return cls(id=global_id(cls, row.id), provider=row.provider, model=row.model, input_tokens=row.input_tokens,
                   output_tokens=row.output_tokens, total_tokens=row.input_tokens + row.output_tokens,
                   cached_input_tokens=row.cached_input_tokens, input_cost_usd=row.input_cost_usd,
                   output_cost_usd=row.output_cost_usd, total_cost_usd=row.total_cost_usd, latency_ms=row.latency_ms,
                   end_user_id=row.end_user_id, created_at=row.created_at, row=row)

    prompt: PromptRef | None = related(models.Prompt, "prompt_id")
    version: VersionRef | None = related(models.PromptVersion, "version_id")
    execution: ExecutionRef | None = related(models.Execution, "execution_id")
    span: SpanRef | None = related(models.Span, "span_pk", description="The span of the call (ingested spans, and "
                                                                        "executions' traces).")


# the service's enums made GraphQL enums in place (as app/api/core/enums.py does with database enums)
strawberry.enum(TimeBucket, description="Calendar periods in UTC; WEEK starts on Monday.")
strawberry.enum(CostDimension, description="What a cost report may be grouped by.")


@strawberry.type(description="Calls, tokens and cost of a set of model calls.")
class CostTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal

    @classmethod
    def of(cls, calls: int, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> CostTotals:
        return cls(calls=calls, input_tokens=input_tokens, output_tokens=output_tokens,
                   total_tokens=input_tokens + output_tokens, cost_usd=cost_usd)


@strawberry.type(description="One time bucket of a cost report (of one group, with groupBy: the dimensions not "
                             "grouped by are null). A bucket without calls has zeros and null latencies.")
class CostBucket:
    start: datetime = strawberry.field(description="The start of the bucket (UTC); the first may begin before `from`, "
                                                   "but only calls in the report's range count.")
    provider: str | None
    model: str | None
    end_user_id: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal
    avg_latency_ms: float | None = strawberry.field(description="Over the calls with a latency.")
    p95_latency_ms: float | None = strawberry.field(description=(
        "Continuous 95th percentile over the calls with a latency. Computed only when selected: it reads every call "
        "of the range (the other figures come from an hourly rollup), so it is slower."))
    row: strawberry.Private[cost_report.CostRow]

    @classmethod
    def from_row(cls, row: cost_report.CostRow) -> CostBucket:
        return cls(start=row.start, provider=row.provider, model=row.model, end_user_id=row.end_user_id,
                   calls=row.calls, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                   total_tokens=row.input_tokens + row.output_tokens, cost_usd=row.cost_usd,
                   avg_latency_ms=row.avg_latency_ms, p95_latency_ms=row.p95_latency_ms, row=row)

    prompt: PromptRef | None = related(models.Prompt, "prompt_id", description=(
        "With groupBy PROMPT; null for calls of no prompt, or when you may not read prompts."))
    version: VersionRef | None = related(models.PromptVersion, "version_id", description=(
        "With groupBy VERSION; null for calls of no version, or when you may not read prompts."))


@strawberry.type
class CostReport:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    bucket: TimeBucket
    group_by: list[CostDimension]
    totals: CostTotals = strawberry.field(description="Over the whole range.")
    buckets: list[CostBucket] = strawberry.field(description=(
        "In time order (then by group). Empty buckets are zeros: without groupBy every bucket of the range is here; "
        "with groupBy every group that has a call in the range has a row in every bucket."))
