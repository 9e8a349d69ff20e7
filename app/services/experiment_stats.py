"""Statistics of experiments: per variant and score, and against the control — computed over all runs in SQL
and numpy/scipy, never by looping over rows in Python.

Four statements for any number of experiments: their variants, their evaluators, the runs' figures per
variant (counts, latency, cost: aggregated in SQL), and the scores per variant and name as arrays
(``array_agg`` of values and pairing keys, with pass counts), which numpy and scipy take from there.

Per variant and score (``ScoreStatsData``):

- ``n``, ``mean``, ``stddev`` (sample, n - 1);
- a 95 % confidence interval for the mean, ``ci_method`` saying how: the **Wilson score interval**
  for pass/fail scores (1 or 0: EXACT_MATCH, CONTAINS, REGEX, JSON_VALID, JSON_SCHEMA, JMESPATH); a
  **percentile bootstrap** (2,000 resamples, seeded by the experiment, variant and score, so a read
  gives the same interval every time) when n < 30, or when the score is bounded (LEVENSHTEIN,
  LLM_JUDGE, feedback) and n <= 1,000 — a t interval could leave the bounds there; **Student's t**
  otherwise, clipped to the score's bounds when it has them; none when n < 2;
- ``pass_rate``: passed / scores that say passed or not, with its Wilson interval.

Against the control (every other variant), on the same score:

- **paired** when the experiment ran on a dataset: runs are paired by dataset item and repetition
  (runs without a partner are left out of the test). Pass/fail scores: **McNemar's exact test** — the
  two-sided binomial test of the discordant pairs (``scipy.stats.binomtest``); other scores: the
  **paired t-test** (``ttest_rel``) from 30 pairs on, the **Wilcoxon signed-rank test**
  (``wilcoxon``) below 30. ``delta`` is the mean of the paired differences;
- **unpaired** for live A/B tests (different subjects): **Fisher's exact test** for pass/fail scores,
  **Welch's t-test** (``ttest_ind(equal_var=False)``) otherwise; ``delta`` is the difference of the
  means;
- with several variants, the p-values of one score are adjusted for the number of comparisons:
  **Holm** (default) or **Benjamini–Hochberg** (``PROMPTSTUDIO_EXPERIMENT_P_ADJUST``);
  ``significant`` is adjusted p < 0.05. ``method`` names the test (and the adjustment).

No difference at all (every pair equal, or no discordant pair) is p = 1. A test that cannot say
anything (fewer than 2 values a side, no variation at all but different means) gives no p-value and
is never significant.

The **winner** is the variant whose primary score beats the control's significantly (in the score's
better direction: lower for LATENCY and COST), the one with the largest improvement if several do;
otherwise none.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from scipy import stats as sps
from sqlalchemy import Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Evaluator, Experiment, ExperimentEvaluator, ExperimentRun, ExperimentScore, ExperimentVariant
from app.db.models.enums import ExecutionStatus
from app.rules.evaluators import ScoreShape, score_shape

from .experiment_runs import FEEDBACK_SCORE

ALPHA = 0.05
#: Below this many values (or pairs), a mean's interval is bootstrapped and paired scores use Wilcoxon.
SMALL_N = 30
#: Bounded scores are bootstrapped up to this many values.
BOOTSTRAP_MAX_N = 1000
BOOTSTRAP_RESAMPLES = 2000
_MONEY = Decimal("0.000001")
FEEDBACK_SHAPE = ScoreShape(pass_fail=False, low=1.0, high=5.0)
HUMAN_SHAPE = ScoreShape(pass_fail=False, low=None, high=None)


@dataclass
class ScoreStatsData:
    name: str
    n: int
    mean: float | None = None
    stddev: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    pass_rate: float | None = None
    pass_rate_low: float | None = None
    pass_rate_high: float | None = None
    higher_is_better: bool = True
    pairs: int | None = None
    delta: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    method: str | None = None
    significant: bool = False


@dataclass
class VariantStatsData:
    variant_id: uuid.UUID
    runs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    success_rate: float | None = None
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    avg_cost_usd: Decimal | None = None
    total_cost_usd: Decimal = Decimal("0")
    scores: list[ScoreStatsData] = field(default_factory=list)


@dataclass
class ExperimentStatsData:
    experiment_id: uuid.UUID
    variants: dict[uuid.UUID, VariantStatsData]
    winner_id: uuid.UUID | None = None


# ------------------------------------------------------------------ intervals


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n (95 % by default)."""
    if n <= 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()[:8], "big")


def _mean_interval(x: np.ndarray, shape: ScoreShape, seed: int) -> tuple[float | None, float | None, str | None]:
    n = x.size
    if shape.pass_fail:
        interval = wilson(int((x >= 0.5).sum()), n)
        return (interval[0], interval[1], "Wilson score interval") if interval else (None, None, None)
    if n < 2:
        return None, None, None
    if n < SMALL_N or (shape.bounded and n <= BOOTSTRAP_MAX_N):
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        return float(low), float(high), f"percentile bootstrap ({BOOTSTRAP_RESAMPLES:,} resamples)"
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    low, high, method = mean - half, mean + half, "Student's t"
    if shape.low is not None and low < shape.low:
        low, method = shape.low, "Student's t, clipped to the score's bounds"
    if shape.high is not None and high > shape.high:
        high, method = shape.high, "Student's t, clipped to the score's bounds"
    return low, high, method


def describe(name: str, x: np.ndarray, passed: int, judged: int, shape: ScoreShape, seed: int) -> ScoreStatsData:
    """The variant's own figures of one score."""
    out = ScoreStatsData(name=name, n=int(x.size), higher_is_better=shape.higher_is_better)
    if x.size:
        out.mean = float(x.mean())
    if x.size >= 2:
        out.stddev = float(x.std(ddof=1))
    out.ci_low, out.ci_high, out.ci_method = _mean_interval(x, shape, seed)
    if judged:
        out.pass_rate = passed / judged
        out.pass_rate_low, out.pass_rate_high = wilson(passed, judged) or (None, None)
    return out


# ------------------------------------------------------------------ tests against the control


def _p(value: Any, delta: float | None) -> float | None:
    if value is None or math.isnan(value):
        return 1.0 if delta == 0 else None
    return float(value)


def compare_paired(xv: np.ndarray, kv: np.ndarray, xc: np.ndarray, kc: np.ndarray,
                   shape: ScoreShape) -> tuple[int, float | None, float | None, str]:
    """(pairs, delta, p-value, method) of a variant against the control on runs paired by key."""
    _, iv, ic = np.intersect1d(kv, kc, assume_unique=True, return_indices=True)
    a, b = xv[iv], xc[ic]
    n = int(a.size)
    if n == 0:
        return 0, None, None, "paired: no dataset item has a score of both"
    if shape.pass_fail:
        only_control = int(((b >= 0.5) & (a < 0.5)).sum())
        only_variant = int(((b < 0.5) & (a >= 0.5)).sum())
        delta = (only_variant - only_control) / n
        discordant = only_control + only_variant
        p = 1.0 if discordant == 0 else float(sps.binomtest(only_variant, discordant, 0.5).pvalue)
        return n, delta, p, (f"McNemar's exact test (paired on {n} items: {only_variant} passed only with the "
                             f"variant, {only_control} only with the control)")
    d = a - b
    delta = float(d.mean())
    if not np.any(d != 0):
        test = "paired t-test" if n >= SMALL_N else "Wilcoxon signed-rank test"
        return n, delta, 1.0, f"{test} (paired on {n} items; every pair equal)"
    if n < 2:
        return n, delta, None, f"paired on {n} item: too few to test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n >= SMALL_N:
            return n, delta, _p(sps.ttest_rel(a, b).pvalue, delta), f"paired t-test (paired on {n} items)"
        return n, delta, _p(sps.wilcoxon(a, b).pvalue, delta), f"Wilcoxon signed-rank test (paired on {n} items)"


def compare_unpaired(xv: np.ndarray, xc: np.ndarray, shape: ScoreShape) -> tuple[float | None, float | None, str]:
    """(delta, p-value, method) of a variant against the control on independent runs."""
    nv, nc = int(xv.size), int(xc.size)
    if nv == 0 or nc == 0:
        return None, None, "unpaired: no scores on one side"
    delta = float(xv.mean() - xc.mean())
    if shape.pass_fail:
        kv, kc = int((xv >= 0.5).sum()), int((xc >= 0.5).sum())
        exact = float(sps.fisher_exact([[kv, nv - kv], [kc, nc - kc]]).pvalue)
        return delta, exact, f"Fisher's exact test (unpaired: {nv} runs against {nc})"
    if nv < 2 or nc < 2:
        return delta, None, f"Welch's t-test: too few runs ({nv} against {nc})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = _p(sps.ttest_ind(xv, xc, equal_var=False).pvalue, delta)
    return delta, p, f"Welch's t-test (unpaired: {nv} runs against {nc})"


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values."""
    m = p.size
    order = np.argsort(p)
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    if p.size <= 1:
        return p.copy()
    if method == "bh":
        return np.asarray(sps.false_discovery_control(p, method="bh"), dtype=float)
    return holm(p)


ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg"}


# ------------------------------------------------------------------ reading and computing


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_MONEY, rounding=ROUND_HALF_UP)


async def experiment_stats(session: AsyncSession, experiments: Sequence[Experiment], p_adjust: str = "holm", *,
                           other: AsyncSession | None = None) -> dict[uuid.UUID, ExperimentStatsData]:
    """The statistics of each experiment (see the module docstring): four statements in all. With ``other`` (a
    second session), the runs' figures are read on it while the scores are read on ``session``."""
    ids = list({e.id for e in experiments})
    if not ids:
        return {}
    by_id = {e.id: e for e in experiments}
    r = ExperimentRun
    done = r.status == ExecutionStatus.COMPLETED.value
    figures_stmt = (
        select(r.experiment_id, r.variant_id, func.count(), func.count().filter(done),
               func.count().filter(r.status == ExecutionStatus.FAILED.value),
               func.count().filter(r.status == ExecutionStatus.CANCELLED.value),
               cast(func.avg(r.latency_ms).filter(done), Float),
               func.percentile_cont(0.95).within_group(r.latency_ms).filter(done),
               func.avg(r.cost_usd), func.coalesce(func.sum(r.cost_usd), 0))
        .where(r.experiment_id.in_(ids)).group_by(r.experiment_id, r.variant_id))

    async def read_figures(on: AsyncSession) -> Sequence[Any]:
        return (await on.execute(figures_stmt)).all()

    pending = asyncio.ensure_future(read_figures(other)) if other is not None else None
    try:
        variants = (await session.execute(
            select(ExperimentVariant).where(ExperimentVariant.experiment_id.in_(ids))
            .order_by(ExperimentVariant.experiment_id, ExperimentVariant.position))).scalars().all()
        shapes: dict[uuid.UUID, dict[str, ScoreShape]] = {i: {} for i in ids}
        for experiment_id, name, type_, config in (await session.execute(
                select(ExperimentEvaluator.experiment_id, Evaluator.name, Evaluator.type, Evaluator.config)
                .join(Evaluator, Evaluator.id == ExperimentEvaluator.evaluator_id)
                .where(ExperimentEvaluator.experiment_id.in_(ids)))).all():
            shapes[experiment_id][name] = score_shape(type_, config)
        s = ExperimentScore
        arrays = (await session.execute(
            select(s.experiment_id, s.variant_id, s.name, func.array_agg(s.value), func.array_agg(s.pair_key),
                   func.count().filter(s.passed.is_(True)), func.count(s.passed))
            .where(s.experiment_id.in_(ids)).group_by(s.experiment_id, s.variant_id, s.name))).all()
        figures = await pending if pending is not None else await read_figures(session)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)

    out = {i: ExperimentStatsData(i, {}) for i in ids}
    for v in variants:
        out[v.experiment_id].variants[v.id] = VariantStatsData(variant_id=v.id)
    for experiment_id, variant_id, runs, completed, failed, cancelled, latency, p95, cost, total in figures:
        data = out[experiment_id].variants.get(variant_id)
        if data is None:
            continue
        data.runs, data.completed, data.failed, data.cancelled = runs, completed, failed, cancelled
        data.success_rate = completed / (completed + failed) if completed + failed else None
        data.avg_latency_ms = latency
        data.p95_latency_ms = float(p95) if p95 is not None else None
        data.avg_cost_usd, data.total_cost_usd = _money(cost), _money(total) or Decimal("0")

    scores: dict[uuid.UUID, dict[str, dict[uuid.UUID, tuple[np.ndarray, np.ndarray | None, int, int]]]] = {
        i: {} for i in ids}
    for experiment_id, variant_id, name, values, keys, passed, judged in arrays:
        paired = by_id[experiment_id].environment is None
        x = np.asarray(values, dtype=np.float64)
        k = np.asarray(keys, dtype=np.int64) if paired and keys and keys[0] is not None else None
        scores[experiment_id].setdefault(name, {})[variant_id] = (x, k, int(passed), int(judged))

    for experiment_id, by_name in scores.items():
        experiment = by_id[experiment_id]
        control = next((v.id for v in variants if v.experiment_id == experiment_id and v.is_control), None)
        for name in sorted(by_name):
            shape = shapes[experiment_id].get(name) or (FEEDBACK_SHAPE if name == FEEDBACK_SCORE else HUMAN_SHAPE)
            per_variant = by_name[name]
            stats: dict[uuid.UUID, ScoreStatsData] = {}
            for variant_id, (x, _, passed, judged) in per_variant.items():
                stats[variant_id] = describe(name, x, passed, judged, shape, _seed(experiment_id, variant_id, name))
            if control is not None and control in per_variant:
                xc, kc, _, _ = per_variant[control]
                tested: list[ScoreStatsData] = []
                for variant_id, (xv, kv, _, _) in per_variant.items():
                    if variant_id == control:
                        continue
                    st = stats[variant_id]
                    if kv is not None and kc is not None:
                        st.pairs, st.delta, st.p_value, st.method = compare_paired(xv, kv, xc, kc, shape)
                    else:
                        st.delta, st.p_value, st.method = compare_unpaired(xv, xc, shape)
                    if st.p_value is not None:
                        tested.append(st)
                if tested:
                    adjusted = adjust(np.array([t.p_value for t in tested], dtype=float), p_adjust)
                    for st, a in zip(tested, adjusted, strict=True):
                        st.adjusted_p_value = float(a)
                        st.significant = bool(a < ALPHA)
                        if len(tested) > 1:
                            st.method = f"{st.method}; {ADJUSTMENT_NAMES[p_adjust]}-adjusted for {len(tested)} " \
                                        "comparisons"
            for variant_id, st in stats.items():
                if variant_id in out[experiment_id].variants:
                    out[experiment_id].variants[variant_id].scores.append(st)
        out[experiment_id].winner_id = _winner(experiment, control, out[experiment_id])
    return out


def _winner(experiment: Experiment, control: uuid.UUID | None, data: ExperimentStatsData) -> uuid.UUID | None:
    name = experiment.primary_score
    if control is None or name is None:
        return None
    best: tuple[float, uuid.UUID] | None = None
    for variant_id, v in data.variants.items():
        if variant_id == control:
            continue
        st = next((s for s in v.scores if s.name == name), None)
        if st is None or not st.significant or st.delta is None:
            continue
        improvement = st.delta if st.higher_is_better else -st.delta
        if improvement > 0 and (best is None or improvement > best[0]):
            best = (improvement, variant_id)
    return best[1] if best else None
