"""Scores of backtest forecasts: absolute and percentage error, interval coverage and width,
and the continuous ranked probability score (CRPS) from forecast draws.

All functions are pure and take plain arrays, so they are tested on hand-made numbers.

Examples
--------
>>> import numpy as np
>>> round(crps_samples(np.array([0.0, 1.0, 2.0, 3.0]), 1.5), 4)
0.375
>>> crps_samples(np.array([2.0]), 5.0)  # a point forecast: CRPS is the absolute error
3.0
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["LEVELS", "crps_samples", "crps_many", "mape", "interval_columns", "score_frame", "coverage_range"]

#: Central interval levels reported for the Bayesian model.
LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def interval_columns(model: str, level: float) -> tuple[str, str]:
    """Names of the lower and upper interval columns, statsforecast style (``bayes-lo-80``)."""
    tag = f"{100 * level:g}"
    return f"{model}-lo-{tag}", f"{model}-hi-{tag}"


def crps_samples(samples: np.ndarray, y: float) -> float:
    """Sample estimate of CRPS(F, y) = E|X - y| - E|X - X'| / 2 for X, X' ~ F.

    Uses the sorted-sample identity ``E|X - X'| = 2 / n^2 * sum_i (2i - n - 1) x_(i)``
    (the plain "energy" estimator, O(n log n)). Lower is better; it equals the absolute
    error for a single sample.
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    n = x.size
    if n == 0:
        return float("nan")
    term1 = np.mean(np.abs(x - y))
    i = np.arange(1, n + 1)
    term2 = 2.0 * np.sum((2 * i - n - 1) * x) / (n * n)
    return float(term1 - 0.5 * term2)


def crps_many(draws: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """CRPS of each column of ``draws`` (sims, m) against ``actual`` (m,)."""
    d = np.asarray(draws, dtype=float)
    a = np.asarray(actual, dtype=float)
    return np.array([crps_samples(d[:, j], a[j]) for j in range(d.shape[1])])


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error in percent, over the months with ``actual > 0``.

    Months with zero actual wins are left out (the percentage is undefined there);
    NaN when every actual is zero.
    """
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    ok = a > 0
    if not ok.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs(f[ok] - a[ok]) / a[ok]))


def coverage_range(pairs_per_month: Sequence[int], level: float, prob: float = 0.9) -> tuple[float, float]:
    """The empirical coverage an honest interval gives with these pairs, ``prob`` of the time.

    A backtest's (cut-off, month) pairs are not independent: the forecasts of one calendar
    month from successive cut-offs miss or hit together. This range treats the distinct
    forecast months as independent and the pairs of one month as alike (all inside or
    all outside, with probability ``level``), wider than independent pairs give (errors
    a window shares across its months, its fitted parameters, would widen it more): the empirical
    coverage is then ``sum(w_m * B_m) / sum(w_m)``, ``B_m ~ Bernoulli(level)``, whose
    distribution is computed exactly (a convolution over the months).

    Parameters
    ----------
    pairs_per_month : sequence of int
        Number of scored pairs of every distinct forecast month (each >= 1).
    level : float
        Nominal coverage of the interval, in (0, 1).
    prob : float
        Central probability of the range.

    Returns
    -------
    (lo, hi) : tuple of float
        Equal-tailed quantiles of the empirical coverage (NaN when there are no pairs).

    Examples
    --------
    >>> coverage_range([1] * 10, 0.8)          # 10 independent pairs: Binomial(10, 0.8) / 10
    (0.6, 1.0)
    >>> coverage_range([3, 3, 3, 3, 3, 3], 0.8)  # 18 pairs, but only 6 months
    (0.5, 1.0)
    """
    w = np.asarray(pairs_per_month, dtype=np.int64)
    if not 0.0 < level < 1.0 or not 0.0 < prob < 1.0:
        raise ValueError(f"level and prob must lie in (0, 1), got {level}, {prob}")
    if w.size == 0:
        return float("nan"), float("nan")
    if (w < 1).any():
        raise ValueError("every month needs at least one pair")
    n = int(w.sum())
    dist = np.zeros(n + 1)
    dist[0] = 1.0
    for k in w:                                  # P(pairs inside = j), one month at a time
        dist[k:] = dist[k:] * (1.0 - level) + dist[:-k] * level
        dist[:k] *= 1.0 - level
    cdf = np.cumsum(dist)
    tail = (1.0 - prob) / 2.0
    lo = int(np.searchsorted(cdf, tail - 1e-12))
    hi = int(np.searchsorted(cdf, 1.0 - tail - 1e-12))
    return lo / n, hi / n


def score_frame(frame: pd.DataFrame, models: Sequence[str], *, interval_model: str = "bayes",
                crps: np.ndarray | None = None, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """One row of scores per model over the rows of a backtest frame.

    Parameters
    ----------
    frame : DataFrame
        Rows of :attr:`BacktestResult.frame` (``actual`` plus one column per model and
        the interval columns of ``interval_model``).
    models : sequence of str
        Point-forecast columns to score.
    interval_model : str
        The model whose interval columns give coverage and width.
    crps : ndarray, optional
        CRPS of ``interval_model`` per row of ``frame`` (from its draws). Point forecasts
        have CRPS equal to their absolute error (a degenerate forecast distribution).
    levels : sequence of float

    Returns
    -------
    DataFrame
        Index ``model``; columns ``n, MAE, MAPE, bias, CRPS`` and, for the interval
        model, ``coverage_<p>`` and ``width_<p>`` per level (NaN for the others).
    """
    a = frame["actual"].to_numpy(dtype=float)
    rows = []
    for m in models:
        f = frame[m].to_numpy(dtype=float)
        ok = np.isfinite(f) & np.isfinite(a)
        err = np.abs(f[ok] - a[ok])
        row: dict[str, float] = {"model": m, "n": int(ok.sum()),
                                 "MAE": float(err.mean()) if ok.any() else np.nan,
                                 "MAPE": mape(a[ok], f[ok]),
                                 "bias": float(np.mean(f[ok] - a[ok])) if ok.any() else np.nan}
        if m == interval_model and crps is not None:
            row["CRPS"] = float(np.nanmean(crps))
        else:
            row["CRPS"] = row["MAE"]
        for lv in levels:
            tag = f"{100 * lv:g}"
            lo_c, hi_c = interval_columns(interval_model, lv)
            if m == interval_model and lo_c in frame and hi_c in frame:
                lo, hi = frame[lo_c].to_numpy(float), frame[hi_c].to_numpy(float)
                row[f"coverage_{tag}"] = float(np.mean((a >= lo) & (a <= hi)))
                row[f"width_{tag}"] = float(np.mean(hi - lo))
            else:
                row[f"coverage_{tag}"] = np.nan
                row[f"width_{tag}"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
