"""Cost reports (Query.costReport): calls, tokens, cost and latency of a project's model calls over a time
range, in time buckets and optionally grouped, aggregated in SQL over ``llm_usage`` — executions' calls
and ingested LLM spans alike.

Semantics (the API's field description and the README say the same):

- The range is ``[from, to)`` by the call's time (``llm_usage.created_at``). Buckets are calendar
  periods in UTC (``date_trunc``): HOUR, DAY, WEEK (from Monday), MONTH; the first bucket is the one
  holding ``from`` (its ``start`` may be before ``from``; only calls in the range count).
- **Empty buckets are zeros.** Without groupBy every bucket of the range is reported, in order, with
  zeros where there were no calls (average and p95 latency null). With groupBy, every group (a
  combination of the dimensions' values) that has at least one call in the range gets a row in every
  bucket, zeros included, so each group is a gap-free series; groups without calls do not appear.
- ``from`` after ``to`` is an error; so is a range of more than ``max_buckets`` buckets, and a report of
  more than ``max_rows`` rows (buckets x groups).
- ``totals`` are over the whole range (not rounded per bucket).

Where the figures come from: an hourly rollup (``llm_usage_hourly``, kept by triggers on
``llm_usage``) for the whole hours of the range plus ``llm_usage`` itself for the partial hours at its
edges — exact, and a month of a million calls reads a few thousand rows. A report grouped by END_USER
(not in the rollup) or asking for the 95th percentile of latency (percentiles do not add up) reads the
range's ``llm_usage`` rows instead: the p95 is computed only when it is asked for.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import invalid

MONEY = Decimal("0.000001")


class TimeBucket(enum.StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class CostDimension(enum.StrEnum):
    PROVIDER = "PROVIDER"
    MODEL = "MODEL"
    END_USER = "END_USER"
    PROMPT = "PROMPT"
    VERSION = "VERSION"


#: dimension -> column of llm_usage (and of the rollup, but for END_USER)
COLUMNS = {
    CostDimension.PROVIDER: "provider",
    CostDimension.MODEL: "model",
    CostDimension.END_USER: "end_user_id",
    CostDimension.PROMPT: "prompt_id",
    CostDimension.VERSION: "version_id",
}
_ALL_COLUMNS = tuple(COLUMNS.values())


@dataclass(frozen=True)
class CostRow:
    """One bucket (of one group): the dimensions not grouped by are None."""

    start: datetime
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    provider: str | None = None
    model: str | None = None
    end_user_id: str | None = None
    prompt_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Totals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0.000000")


@dataclass(frozen=True)
class CostReportData:
    start: datetime
    end: datetime
    bucket: TimeBucket
    group_by: tuple[CostDimension, ...]
    totals: Totals
    rows: list[CostRow]
    #: "rollup" or "raw": where the figures were read (for logs and the benchmark)
    source: str


# --------------------------------------------------------------------------- buckets


def _utc(at: datetime) -> datetime:
    """Times without a zone are UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def truncate(at: datetime, bucket: TimeBucket) -> datetime:
    """The start of the bucket holding ``at`` (UTC), as ``date_trunc`` computes it."""
    at = _utc(at)
    hour = at.replace(minute=0, second=0, microsecond=0)
    if bucket is TimeBucket.HOUR:
        return hour
    day = hour.replace(hour=0)
    if bucket is TimeBucket.DAY:
        return day
    if bucket is TimeBucket.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def advance(start: datetime, bucket: TimeBucket) -> datetime:
    """The start of the next bucket."""
    if bucket is TimeBucket.HOUR:
        return start + timedelta(hours=1)
    if bucket is TimeBucket.DAY:
        return start + timedelta(days=1)
    if bucket is TimeBucket.WEEK:
        return start + timedelta(days=7)
    return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)


def bucket_count(start: datetime, end: datetime, bucket: TimeBucket, stop_after: int) -> int:
    """How many buckets ``[start, end)`` spans (counting stops past ``stop_after``)."""
    n, at = 0, truncate(start, bucket)
    end = _utc(end)
    while at < end and n <= stop_after:
        n += 1
        at = advance(at, bucket)
    return n


def check_range(start: datetime, end: datetime, bucket: TimeBucket, max_buckets: int) -> None:
    if _utc(start) > _utc(end):
        raise invalid(f"`from` ({_utc(start).isoformat()}) is after `to` ({_utc(end).isoformat()})", ["from"])
    n = bucket_count(start, end, bucket, max_buckets)
    if n > max_buckets:
        shorter = {TimeBucket.HOUR: "DAY", TimeBucket.DAY: "WEEK", TimeBucket.WEEK: "MONTH"}.get(bucket)
        hint = f"a larger bucket ({shorter}) or a shorter range" if shorter else "a shorter range"
        raise invalid(f"the range holds more than {max_buckets} {bucket.value} buckets (the most a report may have); "
                      f"use {hint}", ["to"])


# --------------------------------------------------------------------------- the query

_ROLLUP_PARTS = """
    SELECT hour AS at, {cols}, calls, input_tokens, output_tokens, cost_usd, latency_ms_sum, latency_calls
    FROM llm_usage_hourly
    WHERE project_id = :project AND hour >= :inner_start AND hour < :inner_end
    UNION ALL
    SELECT created_at, {cols}, 1, input_tokens, output_tokens, total_cost_usd, coalesce(latency_ms, 0),
           (latency_ms IS NOT NULL)::int
    FROM llm_usage
    WHERE project_id = :project
      AND ((created_at >= :start AND created_at < :inner_start) OR (created_at >= :inner_end AND created_at < :end))
"""

_FROM_ROLLUP = """
    SELECT date_trunc(:unit, at, 'UTC') AS bucket, {cols}
           sum(calls)::bigint AS calls, sum(input_tokens)::bigint AS input_tokens,
           sum(output_tokens)::bigint AS output_tokens, sum(cost_usd) AS cost_usd,
           sum(latency_ms_sum)::float8 / nullif(sum(latency_calls), 0) AS avg_latency, NULL::float8 AS p95_latency
    FROM ({parts}) AS parts
    GROUP BY {group}
"""

_FROM_RAW = """
    SELECT date_trunc(:unit, created_at, 'UTC') AS bucket, {cols}
           count(*)::bigint AS calls, sum(input_tokens)::bigint AS input_tokens,
           sum(output_tokens)::bigint AS output_tokens, sum(total_cost_usd) AS cost_usd,
           avg(latency_ms)::float8 AS avg_latency, {p95} AS p95_latency
    FROM llm_usage
    WHERE project_id = :project AND created_at >= :start AND created_at < :end
    GROUP BY {group}
"""

# Zero-filling: every bucket x every group, LEFT JOINed to the figures. Groups are numbered (dense_rank over
# their columns: NULLs are peers), so the join is a hash join on (bucket, number) — not a nested loop over
# "IS NOT DISTINCT FROM" on each column, which is quadratic in buckets x groups.
_REPORT = """
WITH figures AS ({agg}),
agg AS (SELECT figures.*, {rank} AS grp FROM figures),
groups AS ({groups}),
buckets AS (
    SELECT g AT TIME ZONE 'UTC' AS bucket
    FROM generate_series(date_trunc(:unit, CAST(:start AS timestamptz) AT TIME ZONE 'UTC'),
                         CAST(:end AS timestamptz) AT TIME ZONE 'UTC' - interval '1 microsecond',
                         interval '{step}') AS g
)
SELECT b.bucket, {select_cols}
       coalesce(a.calls, 0) AS calls, coalesce(a.input_tokens, 0) AS input_tokens,
       coalesce(a.output_tokens, 0) AS output_tokens, coalesce(a.cost_usd, 0) AS cost_usd,
       a.avg_latency, a.p95_latency,
       sum(coalesce(a.calls, 0)) OVER () AS total_calls, sum(coalesce(a.input_tokens, 0)) OVER () AS total_input,
       sum(coalesce(a.output_tokens, 0)) OVER () AS total_output, sum(coalesce(a.cost_usd, 0)) OVER () AS total_cost
FROM buckets b CROSS JOIN groups g
LEFT JOIN agg a ON a.bucket = b.bucket AND a.grp = g.grp
ORDER BY b.bucket, g.grp
LIMIT :limit
"""

_UNITS = {TimeBucket.HOUR: ("hour", "1 hour"), TimeBucket.DAY: ("day", "1 day"),
          TimeBucket.WEEK: ("week", "7 days"), TimeBucket.MONTH: ("month", "1 month")}


def _ceil_hour(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(hours=1)


def report_sql(bucket: TimeBucket, group_by: Sequence[CostDimension], *, raw: bool, with_p95: bool) -> str:
    """The report's one statement for these dimensions (the values are bound parameters)."""
    cols = [COLUMNS[d] for d in group_by]
    agg_cols = "".join(f"{c}, " for c in cols)
    group = ", ".join(["1", *cols])
    if raw:
        p95 = "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)" if with_p95 else "NULL::float8"
        agg = _FROM_RAW.format(cols=agg_cols, p95=p95, group=group)
    else:
        parts = _ROLLUP_PARTS.format(cols=", ".join(c for c in _ALL_COLUMNS if c != "end_user_id"))
        agg = _FROM_ROLLUP.format(cols=agg_cols, parts=parts, group=group)
    # without groupBy there is one group, always there: every bucket of the range is reported
    rank = f"dense_rank() OVER (ORDER BY {', '.join(cols)})" if cols else "1"
    groups = f"SELECT DISTINCT grp, {', '.join(cols)} FROM agg" if cols else "SELECT 1 AS grp"  # noqa: S608 - COLUMNS
    select_cols = "".join(f"g.{c}, " for c in cols)
    return _REPORT.format(agg=agg, rank=rank, groups=groups, select_cols=select_cols, step=_UNITS[bucket][1])


async def cost_report(session: AsyncSession, project_id: uuid.UUID, *, start: datetime, end: datetime,
                      bucket: TimeBucket, group_by: Sequence[CostDimension], with_p95: bool,
                      max_buckets: int, max_rows: int) -> CostReportData:
    """The report (one SQL statement). Raises ServiceError (INVALID) for a range it refuses (see the module)."""
    start, end = _utc(start), _utc(end)
    check_range(start, end, bucket, max_buckets)
    dims = tuple(dict.fromkeys(group_by))  # each once, in the order given
    raw = with_p95 or CostDimension.END_USER in dims
    inner_start, inner_end = _ceil_hour(start), end.replace(minute=0, second=0, microsecond=0)
    if inner_start >= inner_end:  # no whole hour: all from llm_usage
        inner_start = inner_end = end
    sql = report_sql(bucket, dims, raw=raw, with_p95=with_p95)
    params = {"project": project_id, "start": start, "end": end, "inner_start": inner_start,
              "inner_end": inner_end, "unit": _UNITS[bucket][0], "limit": max_rows + 1}
    result = (await session.execute(text(sql), params)).mappings().all()
    if len(result) > max_rows:
        raise invalid(f"the report would have more than {max_rows} rows (buckets x groups); use a larger bucket, "
                      "a shorter range or fewer groupBy dimensions", ["groupBy"])
    rows = []
    for r in result:
        values = {c: r[c] for c in (COLUMNS[d] for d in dims)}
        rows.append(CostRow(start=r["bucket"], calls=int(r["calls"]), input_tokens=int(r["input_tokens"]),
                            output_tokens=int(r["output_tokens"]), cost_usd=Decimal(r["cost_usd"]).quantize(MONEY),
                            avg_latency_ms=r["avg_latency"], p95_latency_ms=r["p95_latency"], **values))
    totals = Totals()
    if result:
        first = result[0]
        totals = Totals(calls=int(first["total_calls"]), input_tokens=int(first["total_input"]),
                        output_tokens=int(first["total_output"]),
                        cost_usd=Decimal(first["total_cost"]).quantize(MONEY))
    return CostReportData(start=start, end=end, bucket=bucket, group_by=dims, totals=totals, rows=rows,
                          source="raw" if raw else "rollup")
