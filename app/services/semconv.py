"""Semantic conventions: what a span's attributes say about it, in both families that LLM
instrumentation uses — OpenInference (Arize) and OpenTelemetry GenAI — plus OpenTelemetry's HTTP and
database conventions.

:func:`read` takes a span's attributes (a flat dict of attribute key -> value, as they came) and
returns its :class:`Conventions`: the span kind they imply, its model call's usage (provider, model,
tokens, cached tokens, and the cost when the span carries one), the end user and session, and the
trace-level metadata and tags. Nothing is removed from the attributes: they are stored as they
came, the mapped values are stored besides them.

Kind, first that applies:

1. ``openinference.span.kind`` (LLM, CHAIN, TOOL, AGENT, RETRIEVER, EMBEDDING, RERANKER, GUARDRAIL;
   EVALUATOR and PROMPT become CHAIN, UNKNOWN and others nothing);
2. ``gen_ai.operation.name`` (chat, text_completion, generate_content -> LLM; embeddings ->
   EMBEDDING; execute_tool -> TOOL; create_agent, invoke_agent -> AGENT);
3. a model name or token counts (``llm.model_name``, ``gen_ai.request.model``, ``llm.token_count.*``,
   ``gen_ai.usage.*``) -> LLM;
4. database attributes (``db.system``, ``db.system.name``, ``db.query.text``, ``db.statement``,
   ``db.operation.name``) -> DATABASE;
5. HTTP attributes (``http.request.method``, ``http.method``, ``url.full``, ``http.url``,
   ``http.route``) -> HTTP.

Usage is read from LLM and EMBEDDING spans only: agents and chains often repeat their children's
token totals, which would count the same call twice.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from app.db.models.enums import SpanKind
from app.providers.pricing import find_model_pricing

from .traces import SpanUsage

#: Token counts are stored as PostgreSQL integers.
MAX_TOKENS = 2**31 - 1
#: Costs are numeric(12,6).
MAX_COST = Decimal("999999.999999")
COST_QUANTUM = Decimal("0.000001")
#: Column sizes of llm_usage and traces.
PROVIDER_CHARS = 64
MODEL_CHARS = 200
ID_CHARS = 256

_OPENINFERENCE_KINDS = {
    "LLM": SpanKind.LLM.value, "CHAIN": SpanKind.CHAIN.value, "TOOL": SpanKind.TOOL.value,
    "AGENT": SpanKind.AGENT.value, "RETRIEVER": SpanKind.RETRIEVER.value, "EMBEDDING": SpanKind.EMBEDDING.value,
    "RERANKER": SpanKind.RERANKER.value, "GUARDRAIL": SpanKind.GUARDRAIL.value,
    "EVALUATOR": SpanKind.CHAIN.value, "PROMPT": SpanKind.CHAIN.value,
}
_GENAI_OPERATIONS = {
    "chat": SpanKind.LLM.value, "text_completion": SpanKind.LLM.value, "generate_content": SpanKind.LLM.value,
    "embeddings": SpanKind.EMBEDDING.value, "execute_tool": SpanKind.TOOL.value,
    "create_agent": SpanKind.AGENT.value, "invoke_agent": SpanKind.AGENT.value,
}
_USAGE_KINDS = frozenset({SpanKind.LLM.value, SpanKind.EMBEDDING.value})

# Attribute keys, in order of preference.
MODEL_KEYS = ("gen_ai.response.model", "llm.model_name", "gen_ai.request.model")
PROVIDER_KEYS = ("llm.provider", "gen_ai.provider.name", "gen_ai.system", "llm.system")
INPUT_TOKEN_KEYS = ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKEN_KEYS = ("llm.token_count.completion", "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHED_TOKEN_KEYS = ("llm.token_count.prompt_details.cache_read", "gen_ai.usage.cache_read.input_tokens",
                     "gen_ai.usage.cache_read_input_tokens")
COST_KEYS = ("llm.cost.total", "gen_ai.usage.cost")
COST_PART_KEYS = ("llm.cost.prompt", "llm.cost.completion")
USER_KEYS = ("user.id", "enduser.id")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id")
_LLM_HINTS = MODEL_KEYS + INPUT_TOKEN_KEYS + OUTPUT_TOKEN_KEYS
_DB_HINTS = ("db.system", "db.system.name", "db.query.text", "db.statement", "db.operation.name")
_HTTP_HINTS = ("http.request.method", "http.method", "url.full", "http.url", "http.route")


class BadAttribute(ValueError):
    """A mapped attribute has a value that cannot be stored (the span is rejected, with this reason)."""


@dataclass(slots=True)
class Conventions:
    """What a span's attributes say (None: they say nothing about it)."""

    kind: str | None = None
    usage: SpanUsage | None = None
    end_user_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None
    #: The metadata was parsed from a JSON string whose escapes or constants may hold what PostgreSQL
    #: refuses (U+0000, lone surrogates, NaN): it must be cleaned before it is stored.
    metadata_unclean: bool = False
    tags: list[str] | None = None


def span_kind(attrs: dict[str, Any]) -> str | None:
    """The kind the attributes imply, or None (see the module docstring for the order)."""
    oi = attrs.get("openinference.span.kind")
    if isinstance(oi, str):
        kind = _OPENINFERENCE_KINDS.get(oi.upper())
        if kind is not None:
            return kind
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str):
        kind = _GENAI_OPERATIONS.get(op.lower())
        if kind is not None:
            return kind
    for key in _LLM_HINTS:
        if key in attrs:
            return SpanKind.LLM.value
    for key in _DB_HINTS:
        if key in attrs:
            return SpanKind.DATABASE.value
    for key in _HTTP_HINTS:
        if key in attrs:
            return SpanKind.HTTP.value
    return None


def read(attrs: dict[str, Any], *, kind: str | None = None, latency_ms: int | None = None,
         usage: bool = True) -> Conventions:
    """The conventions of a span with these attributes. ``kind``: the span's kind when its sender said
    it (the attributes' kind is used otherwise); ``usage``: False when the usage is given apart.
    Raises :class:`BadAttribute` for a token count or cost that cannot be stored."""
    out = Conventions()
    if not attrs:
        out.kind = kind
        return out
    out.kind = kind or span_kind(attrs)
    if usage and out.kind in _USAGE_KINDS:
        out.usage = read_usage(attrs, latency_ms)
    out.end_user_id = _first_id(attrs, USER_KEYS)
    out.session_id = _first_id(attrs, SESSION_KEYS)
    meta = attrs.get("metadata")
    if isinstance(meta, str) and meta.startswith("{"):
        out.metadata_unclean = "\\u" in meta or "NaN" in meta or "Infinity" in meta
        try:
            meta = json.loads(meta)
        except (ValueError, RecursionError):
            meta = None
    if isinstance(meta, dict) and meta:
        out.metadata = meta
    tags = attrs.get("tag.tags")
    if isinstance(tags, list) and tags:
        out.tags = [t if isinstance(t, str) else json.dumps(t) for t in tags]
    elif isinstance(tags, str) and tags:
        out.tags = [tags]
    return out


def read_usage(attrs: dict[str, Any], latency_ms: int | None) -> SpanUsage | None:
    """The model call's usage, or None when the attributes name no model, tokens or cost."""
    model = _first_str(attrs, MODEL_KEYS)
    input_tokens = tokens(attrs, INPUT_TOKEN_KEYS)
    output_tokens = tokens(attrs, OUTPUT_TOKEN_KEYS)
    cost = _cost(attrs)
    if model is None and input_tokens is None and output_tokens is None and cost is None:
        return None
    provider = _first_str(attrs, PROVIDER_KEYS)
    model = (model or "unknown")[:MODEL_CHARS]
    provider = (provider.lower() if provider else _provider_of(model))[:PROVIDER_CHARS]
    cached = tokens(attrs, CACHED_TOKEN_KEYS) or 0
    return SpanUsage(provider=provider, model=model, input_tokens=input_tokens or 0,
                     output_tokens=output_tokens or 0, cached_input_tokens=min(cached, input_tokens or 0),
                     latency_ms=latency_ms, cost_usd=cost)


def tokens(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` present, as a token count (whole, 0 to 2,147,483,647; digits in a string too)."""
    for key in keys:
        value = attrs.get(key)
        if value is None:
            continue
        return token_count(value, key)
    return None


def token_count(value: Any, what: str) -> int:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    n: Any = value
    if isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    if isinstance(n, bool) or not isinstance(n, int):
        raise BadAttribute(f"{what} is {_show(value)}; a token count must be a whole number")
    if not 0 <= n <= MAX_TOKENS:
        raise BadAttribute(f"{what} is {n}; a token count must be between 0 and {MAX_TOKENS}")
    return n


def cost_usd(value: Any, what: str) -> Decimal:
    """A cost in US dollars: a number from 0 to 999,999.999999, rounded to 6 places."""
    if isinstance(value, bool):
        raise BadAttribute(f"{what} is {_show(value)}; a cost must be a number of US dollars")
    try:
        d = Decimal(str(value).strip()) if isinstance(value, (int, float, str, Decimal)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise BadAttribute(f"{what} is {_show(value)}; a cost must be a number of US dollars")
    if not 0 <= d <= MAX_COST:
        raise BadAttribute(f"{what} is {_show(value)}; a cost must be between 0 and {MAX_COST} US dollars")
    return d.quantize(COST_QUANTUM)


def _cost(attrs: dict[str, Any]) -> Decimal | None:
    for key in COST_KEYS:
        value = attrs.get(key)
        if value is not None:
            return cost_usd(value, key)
    parts = [cost_usd(attrs[k], k) for k in COST_PART_KEYS if attrs.get(k) is not None]
    if parts:
        total = sum(parts, Decimal(0))
        if total > MAX_COST:
            raise BadAttribute(f"llm.cost.prompt + llm.cost.completion is {total}; more than {MAX_COST} US dollars")
        return total
    return None


def _first_str(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _first_id(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                return text[:ID_CHARS]
    return None


@lru_cache(maxsize=1024)
def _provider_of(model: str) -> str:
    """The provider of a model the pricing table knows ("unknown" otherwise)."""
    entry = find_model_pricing(model)
    return entry["provider"] if entry is not None else "unknown"


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
