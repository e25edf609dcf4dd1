"""Central (equal-tailed) intervals of posterior or simulated draws: the one place they are computed.

Examples
--------
>>> import numpy as np
>>> lo, hi = central_interval(np.arange(101.0), 0.5)
>>> float(lo), float(hi)
(25.0, 75.0)
>>> interval_table(np.arange(101.0), levels=(0.5,))[["mean", "lo_50", "hi_50"]].values.tolist()
[[50.0, 25.0, 75.0]]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .errors import SimulationError

__all__ = ["central_interval", "interval_table", "check_levels", "level_tag", "INTERVAL_LEVELS"]

#: Central interval levels reported by default.
INTERVAL_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def check_levels(levels: Sequence[float] | float) -> tuple[float, ...]:
    """Validate central-interval levels (each strictly between 0 and 1)."""
    lv = (float(levels),) if np.isscalar(levels) else tuple(float(x) for x in levels)  # type: ignore[arg-type]
    bad = [x for x in lv if not 0.0 < x < 1.0]
    if bad or not lv:
        raise SimulationError(f"interval levels must lie strictly between 0 and 1, got {list(lv)}; "
                              "pass e.g. levels=(0.5, 0.8, 0.95)")
    return lv


def central_interval(draws: np.ndarray, level: float = 0.9, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed central interval of ``draws`` along ``axis``: the (1-level)/2 and
    (1+level)/2 quantiles."""
    (lv,) = check_levels(level)
    q = np.quantile(np.asarray(draws, dtype=float), _tails((lv,)), axis=axis)
    return q[0], q[1]


def _tails(levels: tuple[float, ...]) -> list[float]:
    """The quantiles of central intervals: ``(1 - level) / 2`` and its complement, per level."""
    return [x for lv in levels for x in ((1.0 - lv) / 2.0, 1.0 - (1.0 - lv) / 2.0)]


def level_tag(level: float) -> str:
    """Label of a level in column names: 0.8 -> ``"80"``, 0.975 -> ``"97_5"``."""
    return f"{100 * level:g}".replace(".", "_")


def interval_table(draws: np.ndarray, levels: Sequence[float] | float = INTERVAL_LEVELS,
                   index: Sequence[object] | pd.Index | None = None, name: str = "item") -> pd.DataFrame:
    """Mean, standard deviation and central intervals of draws, one row per column.

    Parameters
    ----------
    draws : ndarray (n,) or (n, m)
        Draws along axis 0; each column of a 2-D array is summarised separately.
    levels : sequence of float
        Central interval levels, e.g. ``(0.5, 0.8, 0.95)``.
    index : sequence, optional
        Labels of the columns (default ``0..m-1``), stored in column ``name``.
    name : str
        Name of the label column.

    Returns
    -------
    DataFrame
        ``name, mean, sd, lo_50, hi_50, ...`` (see :func:`level_tag`).
    """
    lv = check_levels(levels)
    d = np.asarray(draws, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] == 0:
        raise SimulationError(f"intervals need a non-empty (draws,) or (draws, items) array, got shape {d.shape}")
    labels = list(range(d.shape[1])) if index is None else list(index)
    cols = {name: labels, "mean": d.mean(0), "sd": d.std(0, ddof=1) if d.shape[0] > 1 else np.zeros(d.shape[1])}
    q = np.quantile(d, _tails(lv), axis=0)                 # one sort for every level
    for i, level in enumerate(lv):
        cols[f"lo_{level_tag(level)}"], cols[f"hi_{level_tag(level)}"] = q[2 * i], q[2 * i + 1]
    return pd.DataFrame(cols)
