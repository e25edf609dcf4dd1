"""Entry cohorts as a grid a heatmap can draw: entry month × months since entry.

A pure function over the per-lead cohort table of :func:`funnel_models.data.derive.cohorts`
(``lead_id, cohort, outcome, closed_at, months_to_close``). For the leads that entered in
month ``c``, the cell ``(c, a)`` is their status at the end of month ``c + a``: the share
won by then and the share still open (neither won nor lost). Only months up to the
cut-off are filled: a young cohort has fewer cells, so the grid is a triangle.

Examples
--------
>>> import pandas as pd
>>> c = pd.DataFrame({"lead_id": ["a", "b", "c"], "cohort": pd.to_datetime(["2024-01-01"] * 3),
...                   "outcome": ["WON", "LOST", "OPEN"], "months_to_close": [1.0, 0.0, float("nan")]})
>>> t = cohort_table(c, "2024-02-01")
>>> t[["months_since_entry", "won", "open"]].values.tolist()
[[0, 0, 2], [1, 1, 1]]
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ..data.dates import month_index, month_start
from ..errors import FunnelDataError

__all__ = ["cohort_table", "cohort_grid"]


def cohort_table(cohorts: pd.DataFrame, cutoff: object, *, months: int | None = 12, max_age: int | None = None,
                 segment: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Share won and share still open per entry month and months since entry.

    Parameters
    ----------
    cohorts : DataFrame
        From :func:`funnel_models.data.derive.cohorts`: ``cohort`` (entry month),
        ``outcome`` (``WON``, ``LOST`` or ``OPEN``), ``months_to_close`` (months from the
        entry month to the closing month; NaN while open) and any attribute columns.
    cutoff : date-like
        The last observed month (any day of it).
    months : int, optional
        Keep the last ``months`` entry months up to the cut-off (None: every cohort).
    max_age : int, optional
        Largest months since entry shown (default: as many as the oldest cohort kept has).
    segment : mapping column -> level, optional
        Count only the leads of this segment.

    Returns
    -------
    DataFrame
        ``cohort, months_since_entry, leads, won, open, won_share, open_share``: one row
        per observed cell (``cohort + months_since_entry <= cutoff``), sorted by cohort
        then age. ``won`` counts the cohort's leads won by the end of that month,
        ``open`` those neither won nor lost by then.

    Raises
    ------
    FunnelDataError
        A missing column or an unknown segment column.
    """
    need = {"cohort", "outcome", "months_to_close"}
    missing = sorted(need - set(cohorts.columns))
    if missing:
        raise FunnelDataError(f"cohort_table: the cohorts table lacks column(s) {missing}; build it with "
                              "funnel_models.data.derive.cohorts")
    c = cohorts
    for col, level in (segment or {}).items():
        if col not in c.columns:
            raise FunnelDataError(f"cohort_table: segment column {col!r} is not in the cohorts table")
        c = c[c[col].astype(str) == str(level)]
    cut = int(month_index(pd.Series([month_start(pd.Timestamp(cutoff))]))[0])
    entry = month_index(pd.to_datetime(c["cohort"]))
    keep = entry <= cut
    if months is not None:
        keep &= entry > cut - int(months)
    c, entry = c.loc[keep], entry[keep]
    cols = ["cohort", "months_since_entry", "leads", "won", "open", "won_share", "open_share"]
    if c.empty:
        return pd.DataFrame(columns=cols)
    top = int(cut - entry.min()) if max_age is None else int(max_age)
    closed_after = pd.to_numeric(c["months_to_close"], errors="coerce").to_numpy(float)
    won = (c["outcome"].astype(str) == "WON").to_numpy()
    rows = []
    for m in np.unique(entry):
        sel = entry == m
        n = int(sel.sum())
        for a in range(0, min(cut - int(m), top) + 1):
            closed = sel & np.isfinite(closed_after) & (closed_after <= a)
            w = int((closed & won).sum())
            still = n - int(closed.sum())
            rows.append((m, a, n, w, still))
    out = pd.DataFrame(rows, columns=["m", "months_since_entry", "leads", "won", "open"])
    out.insert(0, "cohort", pd.to_datetime(c["cohort"]).groupby(entry).first().map(month_start)
               .reindex(out["m"]).to_numpy())
    out["won_share"] = out["won"] / out["leads"]
    out["open_share"] = out["open"] / out["leads"]
    return out.drop(columns="m")[cols].reset_index(drop=True)


def cohort_grid(table: pd.DataFrame, value: str = "won_share") -> pd.DataFrame:
    """The cohort table as a grid: one row per entry month (``YYYY-MM``), one column per
    months since entry, NaN where the month is after the cut-off."""
    if table.empty:
        return pd.DataFrame()
    g = table.pivot(index="cohort", columns="months_since_entry", values=value).sort_index()
    g.index = [pd.Timestamp(i).strftime("%Y-%m") for i in g.index]
    return g
