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

__all__ = ["LEVELS", "crps_samples", "crps_many", "mape", "interval_columns", "score_frame"]

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
