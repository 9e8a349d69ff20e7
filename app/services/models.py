"""Model pricing: the shipped table seeded at start-up, admin changes, and the cost of a call
(``price_call``, ``PriceBook`` for many). Usage records (``llm_usage``) are written with the call's
span, by ``app.services.traces.write_spans``: the one place usage is written.

Prices are rows of ``model_configs``, each effective from ``effective_from`` on. A price change
is a new row, so the cost stored on past executions and usage records never changes. The cost
of a call uses the row in force when the call started: the latest active row of the model with
``effective_from <= call time``.

A call whose model has no price gets **no cost** (null on the execution, 0 with no
``model_config_id`` on its usage record) and a WARN log: a made-up 0 would read as "free".
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import ModelConfig
from app.providers.pricing import find_model_pricing, pricing_document

from .access import require_superuser
from .errors import ServiceError, invalid, many
from .tx import Tx, service

MONEY_QUANTUM = Decimal("0.000001")
MONEY_MAX = Decimal("999999.999999")  # numeric(12,6)
_MILLION = Decimal(1_000_000)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- seeding


def seed_rows() -> list[dict]:
    """The shipped pricing table as ``model_configs`` rows, effective from the table's date."""
    document = pricing_document()
    taken = datetime.combine(date.fromisoformat(document["takenAt"]), time.min, tzinfo=UTC)
    rows = []
    for m in document["models"]:
        cached = m.get("cachedInputPricePerMillion")
        rows.append({
            "provider": m["provider"], "model_id": m["modelId"], "display_name": m["displayName"],
            "context_length": m["contextLength"], "max_output_tokens": m["maxOutputTokens"],
            "supports_streaming": m["supportsStreaming"], "supports_tools": m["supportsTools"],
            "input_price_per_million": Decimal(m["inputPricePerMillion"]),
            "output_price_per_million": Decimal(m["outputPricePerMillion"]),
            "cached_input_price_per_million": Decimal(cached) if cached is not None else None,
            "effective_from": taken, "is_active": True,
        })
    return rows


async def seed_pricing(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Insert the shipped prices (idempotent; safe when several processes start at once).

    A model's row from the table is added unless a row for that model is already effective on
    or after the table's date (an admin's later price wins) or the very same row exists.
    Returns the number of rows inserted.
    """
    rows = seed_rows()
    if not rows:
        return 0
    inserted = 0
    async with sessionmaker() as session, session.begin():
        newer = select(ModelConfig.provider, ModelConfig.model_id).where(
            ModelConfig.effective_from >= rows[0]["effective_from"])
        taken = {(p, m) for p, m in (await session.execute(newer)).all()}
        todo = [r for r in rows if (r["provider"], r["model_id"]) not in taken]
        if todo:
            stmt = pg_insert(ModelConfig).values(todo).on_conflict_do_nothing(
                index_elements=["provider", "model_id", "effective_from"]).returning(ModelConfig.id)
            inserted = len((await session.execute(stmt)).all())
    return inserted


# --------------------------------------------------------------------------- prices and costs


@dataclass(frozen=True)
class Cost:
    input_usd: Decimal
    output_usd: Decimal
    total_usd: Decimal


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def compute_cost(config: ModelConfig, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Cost:
    """The cost of a call at ``config``'s prices; cached input tokens (part of ``input_tokens``)
    at the cached-input price when there is one. Each part is rounded to 6 places and the total
    is their sum, so the parts always add up."""
    cached = max(0, min(cached_input_tokens, input_tokens))
    cached_price = config.cached_input_price_per_million
    if cached_price is None:
        cached_price = config.input_price_per_million
    input_usd = _money((Decimal(input_tokens - cached) * config.input_price_per_million
                        + Decimal(cached) * cached_price) / _MILLION)
    output_usd = _money(Decimal(output_tokens) * config.output_price_per_million / _MILLION)
    return Cost(input_usd, output_usd, input_usd + output_usd)


class PriceBook:
    """The price rows of some models, to price many calls with one query (``PriceBook.load``).

    A model is found by its exact (provider, model) first; otherwise by the shipped table's names
    (aliases, a router prefix like ``openai/gpt-4o``, a dated snapshot suffix), so
    ``gpt-4o-2024-08-06`` is priced as ``gpt-4o``.
    """

    def __init__(self, candidates: dict[tuple[str, str], list[tuple[str, str]]], rows: Sequence[ModelConfig]):
        self._candidates = candidates
        self._rows: dict[tuple[str, str], list[ModelConfig]] = {}
        for row in sorted(rows, key=lambda r: r.effective_from, reverse=True):  # newest first
            self._rows.setdefault((row.provider, row.model_id), []).append(row)

    @classmethod
    async def load(cls, session: AsyncSession, models: Iterable[tuple[str, str]]) -> PriceBook:
        candidates: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for provider, model in models:
            names = [(provider, model)]
            entry = find_model_pricing(model, provider)
            if entry is not None and (entry["provider"], entry["modelId"]) not in names:
                names.append((entry["provider"], entry["modelId"]))
            candidates[(provider, model)] = names
        wanted = sorted({name for names in candidates.values() for name in names})
        rows: Sequence[ModelConfig] = []
        if wanted:
            rows = (await session.execute(
                select(ModelConfig).where(tuple_(ModelConfig.provider, ModelConfig.model_id).in_(wanted),
                                          ModelConfig.is_active.is_(True)))).scalars().all()
        return cls(candidates, rows)

    def at(self, provider: str, model: str, when: datetime) -> ModelConfig | None:
        """The price of ``provider``/``model`` in force at ``when``, or None when there is none."""
        for name in self._candidates.get((provider, model), [(provider, model)]):
            for row in self._rows.get(name, ()):
                if row.effective_from <= when:
                    return row
        return None


async def price_at(session: AsyncSession, provider: str, model: str, at: datetime) -> ModelConfig | None:
    """The price of ``provider``/``model`` in force at ``at``, or None when there is none (see PriceBook)."""
    return (await PriceBook.load(session, [(provider, model)])).at(provider, model, at)


def current_configs_stmt(provider: str | None = None, at: datetime | None = None):
    """The config in force now (or at ``at``) for each active model, ordered by provider and model."""
    at = at or utcnow()
    stmt = (select(ModelConfig)
            .where(ModelConfig.is_active.is_(True), ModelConfig.effective_from <= at)
            .ext(distinct_on(ModelConfig.provider, ModelConfig.model_id))
            .order_by(ModelConfig.provider, ModelConfig.model_id, ModelConfig.effective_from.desc()))
    if provider is not None:
        stmt = stmt.where(ModelConfig.provider == provider)
    return stmt


# --------------------------------------------------------------------------- upsert (superusers)


@dataclass
class ModelConfigInput:
    provider: str
    model_id: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    display_name: str | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None
    supports_streaming: bool | None = None
    supports_tools: bool | None = None
    cached_input_price_per_million: Decimal | None = None
    effective_from: datetime | None = None


def _check_input(data: ModelConfigInput) -> list[ServiceError]:
    errors: list[ServiceError] = []
    if not isinstance(data.provider, str) or not _NAME.match(data.provider) or len(data.provider) > 64:
        errors.append(invalid("provider must be 1 to 64 lower-case letters, digits, dots, dashes or underscores "
                              "(e.g. openai, anthropic, google)", ["input", "provider"]))
    if not data.model_id or not data.model_id.strip() or len(data.model_id) > 200:
        errors.append(invalid("modelId must be 1 to 200 characters", ["input", "modelId"]))
    if data.display_name is not None and (not data.display_name.strip() or len(data.display_name) > 200):
        errors.append(invalid("displayName must be 1 to 200 characters", ["input", "displayName"]))
    for name, value in (("inputPricePerMillion", data.input_price_per_million),
                        ("outputPricePerMillion", data.output_price_per_million),
                        ("cachedInputPricePerMillion", data.cached_input_price_per_million)):
        if value is None:
            continue
        if not value.is_finite() or value < 0 or value > MONEY_MAX:
            errors.append(invalid(f"{name} must be a price from 0 to {MONEY_MAX} US dollars per million tokens",
                                  ["input", name]))
        elif value != value.quantize(MONEY_QUANTUM):
            errors.append(invalid(f"{name} has more than 6 decimal places", ["input", name]))
    for name, count in (("contextLength", data.context_length), ("maxOutputTokens", data.max_output_tokens)):
        if count is not None and count < 1:
            errors.append(invalid(f"{name} must be 1 or more", ["input", name]))
    if data.effective_from is not None and data.effective_from.tzinfo is None:
        errors.append(invalid("effectiveFrom needs a time zone (e.g. 2026-01-01T00:00:00Z)",
                              ["input", "effectiveFrom"]))
    return errors


@service("model_config.upsert")
async def upsert_model_config(tx: Tx, *, data: ModelConfigInput) -> ModelConfig:
    """Add a model's prices effective from ``data.effective_from`` (default: now).

    Superusers only. Prices already in force before that moment stay as they are, and so do the
    costs already recorded. When the same (provider, model, effectiveFrom) exists, that row is
    updated. Descriptive fields not given are taken from the model's latest row.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    note.about(ModelConfig)
    note.details = {"provider": data.provider, "modelId": data.model_id}
    require_superuser(principal)
    errors = _check_input(data)
    if errors:
        raise many(errors)
    effective = data.effective_from or utcnow()
    note.details["effectiveFrom"] = effective.isoformat()
    latest = (await session.execute(
        select(ModelConfig).where(ModelConfig.provider == data.provider, ModelConfig.model_id == data.model_id)
        .order_by(ModelConfig.effective_from.desc()).limit(1))).scalar_one_or_none()

    def pick(given, attr, default):
        if given is not None:
            return given
        return getattr(latest, attr) if latest is not None else default

    values = {
        "display_name": pick(data.display_name, "display_name", data.model_id),
        "context_length": pick(data.context_length, "context_length", None),
        "max_output_tokens": pick(data.max_output_tokens, "max_output_tokens", None),
        "supports_streaming": pick(data.supports_streaming, "supports_streaming", True),
        "supports_tools": pick(data.supports_tools, "supports_tools", False),
        "input_price_per_million": data.input_price_per_million,
        "output_price_per_million": data.output_price_per_million,
        "cached_input_price_per_million": data.cached_input_price_per_million,
        "is_active": True,
    }
    stmt = (pg_insert(ModelConfig)
            .values(provider=data.provider, model_id=data.model_id, effective_from=effective, **values)
            .on_conflict_do_update(index_elements=["provider", "model_id", "effective_from"], set_=values)
            .returning(ModelConfig.id))
    config_id = (await session.execute(stmt)).scalar_one()
    row = (await session.execute(select(ModelConfig).where(ModelConfig.id == config_id)
                                 .execution_options(populate_existing=True))).scalar_one()
    note.resource_id = row.id
    return row


# --------------------------------------------------------------------------- usage records


@dataclass(frozen=True)
class Priced:
    """The price of a call: the price row used (None when the model has none) and the cost."""

    config: ModelConfig | None
    cost: Cost | None


async def price_call(session: AsyncSession, provider: str, model: str, input_tokens: int, output_tokens: int,
                     cached_input_tokens: int, at: datetime) -> Priced:
    """Price a call at the prices in force when it started (``at``). A model without a price gets no
    cost (None here; 0 with no ``model_config_id`` on its usage record): a made-up 0 would read as "free".
    The usage record itself is written with the call's span (``app.services.traces.write_spans``)."""
    config = await price_at(session, provider, model, at)
    cost = compute_cost(config, input_tokens, output_tokens, cached_input_tokens) if config is not None else None
    return Priced(config, cost)


__all__ = [
    "Cost", "ModelConfigInput", "PriceBook", "Priced", "compute_cost", "current_configs_stmt", "price_at", "price_call",
    "seed_pricing", "seed_rows", "upsert_model_config",
]
