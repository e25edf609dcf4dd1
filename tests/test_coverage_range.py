"""Tests of the coverage range a right interval gives over a backtest's pairs.

The oracles are independent of our code: scipy's binomial quantiles (independent pairs)
and a brute-force enumeration of every hit/miss pattern of the months (pairs alike).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from funnel_models.evaluation.metrics import coverage_range
from funnel_models.evaluation.result import BacktestResult


@pytest.mark.parametrize("n,level", [(6, 0.8), (18, 0.8), (72, 0.8), (18, 0.5), (30, 0.95)])
def test_independent_pairs_match_binomial_quantiles(n, level):
    lo, hi = coverage_range([1] * n, level, prob=0.9)
    assert lo == stats.binom.ppf(0.05, n, level) / n
    assert hi == stats.binom.ppf(0.95, n, level) / n


def _brute(weights, level, prob):
    n = sum(weights)
    mass: dict[int, float] = {}
    for hits in itertools.product((0, 1), repeat=len(weights)):
        k = sum(w * h for w, h in zip(weights, hits))
        mass[k] = mass.get(k, 0.0) + float(np.prod([level if h else 1 - level for h in hits]))
    ks = sorted(mass)
    cdf = np.cumsum([mass[k] for k in ks])
    tail = (1 - prob) / 2
    return ks[int(np.argmax(cdf >= tail - 1e-12))] / n, ks[int(np.argmax(cdf >= 1 - tail - 1e-12))] / n


@pytest.mark.parametrize("weights", [[1, 2, 3, 3, 3, 3, 2, 1], [3, 3, 3, 3, 3, 3], [2, 1], [1, 1, 4, 2, 3, 1, 1]])
@pytest.mark.parametrize("level,prob", [(0.8, 0.9), (0.5, 0.8), (0.95, 0.9)])
def test_months_alike_match_enumeration(weights, level, prob):
    assert coverage_range(weights, level, prob) == pytest.approx(_brute(weights, level, prob))


def test_clustered_range_is_wider_and_input_checked():
    lo1, hi1 = coverage_range([1] * 18, 0.8)
    lo2, hi2 = coverage_range([3] * 6, 0.8)
    assert lo2 < lo1 and hi2 >= hi1
    assert np.isnan(coverage_range([], 0.8)[0])
    with pytest.raises(ValueError):
        coverage_range([1, 0], 0.8)
    with pytest.raises(ValueError):
        coverage_range([1], 1.0)


def _result(actual_inside: list[bool]) -> BacktestResult:
    """A hand-made backtest: 6 cut-offs x 3 months ahead; each pair inside or outside its intervals."""
    rows = []
    it = iter(actual_inside)
    for c in range(6):
        cut = pd.Timestamp("2024-01-31") + pd.offsets.MonthEnd(c)
        for h in range(1, 4):
            month = cut + pd.offsets.MonthBegin(h)
            a = 10.0 if next(it) else 50.0
            rows.append({"cutoff": cut, "month": month, "h": h, "stage": "WON", "mode": "conditional",
                         "actual": a, "bayes": 10.0, **{f"bayes-{s}-{t}": (5.0 if s == "lo" else 20.0)
                                                        for s in ("lo", "hi") for t in ("50", "80", "95")}})
    return BacktestResult(frame=pd.DataFrame(rows), draws={}, states=("WON",), windows=pd.DataFrame(),
                          horizon=3, models=("bayes",))


def test_backtest_coverage_counts_months_and_says_what_it_means():
    res = _result([True] * 18)
    cov = res.coverage()
    r = cov[np.isclose(cov["nominal"], 0.8)].iloc[0]
    assert (r["n"], r["months"]) == (18, 8)          # 6 cut-offs x 3 months ahead reach 8 calendar months
    assert r["empirical"] == 1.0 and r["pairs_hi"] < 1.0 <= r["months_hi"]
    s = res.coverage_sentence()
    assert "18 of 18" in s and "8 forecast months" in s and "no evidence against" in s
    res = _result([False] * 18)
    assert "too narrow" in res.coverage_sentence()
    res = _result([i % 5 != 0 for i in range(18)])
    assert "inside both ranges" in res.coverage_sentence()
