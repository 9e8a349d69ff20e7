"""The statistics of experiments (app.services.experiment_stats) against scipy and the textbook formulas, on
numbers whose answers are known."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from app.rules.evaluators import ScoreShape
from app.services import experiment_stats as st

PASS_FAIL = ScoreShape(pass_fail=True, low=0.0, high=1.0)
UNBOUNDED = ScoreShape(pass_fail=False, low=None, high=None)
BOUNDED = ScoreShape(pass_fail=False, low=0.0, high=1.0)


def test_wilson_interval_is_the_textbook_one():
    for k, n in [(0, 10), (10, 10), (36, 40), (1, 3), (500, 1000)]:
        low, high = st.wilson(k, n)
        z, p = 1.959963984540054, k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert (low, high) == (pytest.approx(max(0, centre - half)), pytest.approx(min(1, centre + half)))
    assert st.wilson(0, 0) is None


def test_paired_tests_equal_scipys():
    rng = np.random.default_rng(7)
    keys = np.arange(1, 21, dtype=np.int64) * 128 + 1
    control = rng.normal(0.5, 0.1, 20)
    variant = control + rng.normal(0.05, 0.05, 20)
    # the variant's runs in another order: pairing is by key, not by position
    order = rng.permutation(20)
    pairs, delta, p, method = st.compare_paired(variant[order], keys[order], control, keys, UNBOUNDED)
    assert pairs == 20 and delta == pytest.approx((variant - control).mean())
    assert p == pytest.approx(sps.wilcoxon(variant, control).pvalue) and method.startswith("Wilcoxon signed-rank")
    keys40 = np.arange(1, 41, dtype=np.int64) * 128 + 1
    c40 = rng.normal(0.5, 0.1, 40)
    v40 = c40 + rng.normal(0.02, 0.05, 40)
    _, _, p, method = st.compare_paired(v40, keys40, c40, keys40, UNBOUNDED)
    assert p == pytest.approx(sps.ttest_rel(v40, c40).pvalue) and method.startswith("paired t-test")
    # runs without a partner are left out
    pairs, _, _, _ = st.compare_paired(v40[:30], keys40[:30], c40[10:], keys40[10:], UNBOUNDED)
    assert pairs == 20


def test_mcnemar_exact_and_fisher_equal_scipys():
    a = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0], dtype=float)
    b = np.array([0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0], dtype=float)
    keys = np.arange(12, dtype=np.int64)
    _, delta, p, method = st.compare_paired(a, keys, b, keys, PASS_FAIL)
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    assert p == pytest.approx(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue) and "McNemar" in method
    assert delta == pytest.approx(a.mean() - b.mean())
    delta, p, method = st.compare_unpaired(a, b, PASS_FAIL)
    assert p == pytest.approx(sps.fisher_exact([[9, 3], [4, 8]]).pvalue) and method.startswith("Fisher")
    x, y = np.array([3.1, 2.9, 3.5, 4.0, 3.3]), np.array([2.0, 2.5, 2.2, 2.8, 2.1, 2.6])
    _, p, method = st.compare_unpaired(x, y, UNBOUNDED)
    assert p == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue) and method.startswith("Welch")


def test_no_difference_is_p_one_and_too_little_is_no_p():
    same = np.array([0.2, 0.4, 0.4, 0.9])
    keys = np.arange(4, dtype=np.int64)
    assert st.compare_paired(same, keys, same, keys, UNBOUNDED)[2] == 1.0
    assert st.compare_paired(same, keys, same, keys, PASS_FAIL)[2] == 1.0
    assert st.compare_unpaired(np.array([1.0]), np.array([2.0]), UNBOUNDED)[1] is None


def test_holm_and_benjamini_hochberg():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running maximum
    assert list(st.adjust(p, "holm")) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(st.adjust(p, "bh")) == pytest.approx(list(sps.false_discovery_control(p, method="bh")))
    assert list(st.adjust(np.array([0.04]), "holm")) == [0.04]


def test_intervals_say_their_method():
    x = np.linspace(0, 1, 200)
    stats = st.describe("s", x, 0, 0, BOUNDED, seed=1)
    assert stats.ci_method.startswith("percentile bootstrap") and 0 <= stats.ci_low < stats.mean < stats.ci_high <= 1
    again = st.describe("s", x, 0, 0, BOUNDED, seed=1)
    assert (again.ci_low, again.ci_high) == (stats.ci_low, stats.ci_high)  # seeded: the same on every read
    big = np.random.default_rng(3).normal(10, 2, 500)
    stats = st.describe("s", big, 0, 0, UNBOUNDED, seed=1)
    half = sps.t.ppf(0.975, 499) * big.std(ddof=1) / math.sqrt(500)
    assert stats.ci_method == "Student's t"
    assert (stats.ci_low, stats.ci_high) == (pytest.approx(big.mean() - half), pytest.approx(big.mean() + half))
    stats = st.describe("s", np.array([1.0, 0.0, 1.0]), 2, 3, PASS_FAIL, seed=1)
    assert stats.ci_method == "Wilson score interval" and stats.pass_rate == pytest.approx(2 / 3)
