"""Time to convert, from the data: months from entering a stage to leaving it, and to winning.

Pure functions over canonical monthly snapshots (``month, lead_id, stage``; the status at
each month's end). A lead is *in* a stage from the first month-end it is seen there; it
*leaves* at the first month-end it is seen at a later state (a backward move is held at
the furthest stage reached, as in :func:`funnel_models.data.derive.transitions`).

* :func:`stage_durations` -- one row per lead and open stage it was seen in: months in
  the stage until it left (``moved on``, ``won`` or ``lost``; NaN while still ``open``),
  and months from entering the stage to the lead's win. The pseudo stage ``ENTRY`` is the
  lead's first month-end: its ``months_to_win`` is the months from lead to win.
* :func:`time_to_convert_table` -- counts per stage and number of months.

Examples
--------
>>> import pandas as pd
>>> from funnel_models.data.spec import FunnelSpec
>>> spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["WON"], "lost": ["LOST"]})
>>> s = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
...                   "lead_id": ["x"] * 4, "stage": ["A", "A", "B", "WON"]})
>>> stage_durations(s, spec)[["stage", "months", "exit", "months_to_win"]].values.tolist()
[['ENTRY', 0.0, 'moved on', 3.0], ['A', 2.0, 'moved on', 3.0], ['B', 1.0, 'won', 1.0]]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..data.dates import from_month_index, month_index
from ..data.spec import ENTRY, FunnelSpec
from ..errors import FunnelDataError

__all__ = ["stage_durations", "time_to_convert_table", "EXITS"]

#: How a lead left a stage (``open``: it has not left by the cut-off).
EXITS = ("moved on", "won", "lost", "open")


def stage_durations(snapshots: pd.DataFrame, spec: FunnelSpec, *, by: Sequence[str] = ()) -> pd.DataFrame:
    """Months each lead spent in each open stage, and months from entering it to winning.

    Parameters
    ----------
    snapshots : DataFrame
        Canonical monthly snapshots (through the cut-off).
    spec : FunnelSpec
    by : sequence of str
        Attribute columns to keep (a lead's first observed value).

    Returns
    -------
    DataFrame
        ``lead_id, stage, entered, left, months, exit, months_to_win, *by``. ``stage`` is
        ``ENTRY`` (the lead's first month-end; ``months`` 0) or an open stage code;
        ``months`` = month of leaving - month of entering (NaN while open); ``exit`` one
        of :data:`EXITS`; ``months_to_win`` = month of the win - month of entering (NaN
        unless the lead was won).

    Raises
    ------
    FunnelDataError
        A missing column.
    """
    by = list(by)
    missing = sorted({"month", "lead_id", "stage", *by} - set(snapshots.columns))
    if missing:
        raise FunnelDataError(f"stage_durations: the snapshots lack column(s) {missing}")
    K = spec.n_stages
    states = list(spec.states)
    s = snapshots[["month", "lead_id", "stage", *by]].copy()
    s["r"] = spec.canonical_states(s["stage"], where="snapshots").map({c: i for i, c in enumerate(states)})
    s["m"] = month_index(pd.to_datetime(s["month"]))
    s = s.sort_values(["lead_id", "m"], kind="stable")
    for c in by:
        s[c] = s.groupby("lead_id", sort=False)[c].transform("first")
    s["r"] = s.groupby("lead_id", sort=False)["r"].cummax()
    close_m = s.loc[s["r"] >= K].groupby("lead_id", sort=False)["m"].min()
    s = s[~(s["m"] > s["lead_id"].map(close_m).fillna(np.inf))]    # nothing after the first closing month
    runs = s.drop_duplicates(["lead_id", "r"], keep="first")        # first month-end at each state reached
    g = runs.groupby("lead_id", sort=False)
    nxt_r, nxt_m = g["r"].shift(-1), g["m"].shift(-1)
    won_m = runs.loc[runs["r"] == K].set_index("lead_id")["m"]
    first = runs.groupby("lead_id", sort=False).head(1)
    runs = runs.assign(left_m=nxt_m, exit=np.where(nxt_r.isna(), "open", np.where(
        nxt_r == K, "won", np.where(nxt_r == K + 1, "lost", "moved on"))))
    out_open = runs[runs["r"] < K].assign(stage=lambda d: np.asarray(states, dtype=object)[d["r"].to_numpy()])
    first_exit = np.where(first["r"] == K, "won", np.where(first["r"] == K + 1, "lost", "moved on"))
    out_entry = first.assign(stage=ENTRY, left_m=first["m"], exit=first_exit)
    out = pd.concat([out_entry, out_open], ignore_index=True)
    out["months"] = (out["left_m"] - out["m"]).astype(float)
    out["months_to_win"] = (out["lead_id"].map(won_m) - out["m"]).astype(float)
    out["entered"] = from_month_index(out["m"].to_numpy()).to_numpy()
    left = from_month_index(out["left_m"].fillna(out["m"]).to_numpy())
    out["left"] = left.where(out["left_m"].notna().to_numpy()).to_numpy()
    order = {c: i for i, c in enumerate([ENTRY, *spec.codes])}
    out = out.assign(_o=out["stage"].map(order)).sort_values(["lead_id", "_o"], kind="stable")
    return out[["lead_id", "stage", "entered", "left", "months", "exit", "months_to_win", *by]].reset_index(drop=True)


def time_to_convert_table(durations: pd.DataFrame, stages: Sequence[str], *, max_months: int = 12) -> pd.DataFrame:
    """How many leads left each stage, or were won, after each number of months.

    Parameters
    ----------
    durations : DataFrame
        From :func:`stage_durations`.
    stages : sequence of str
        Open stage codes in funnel order (``ENTRY`` is added first).
    max_months : int
        Months of ``max_months`` or more are counted in the ``max_months`` row.

    Returns
    -------
    DataFrame
        ``stage, months, moved_on, won, lost, to_win``: for each stage (``ENTRY`` first)
        and ``months`` 0..``max_months``, the leads that left the stage after that many
        months by each exit, and ``to_win``: the leads won that many months after
        entering the stage (whatever stage they were won from). The ``ENTRY`` rows have
        every lead at ``months`` 0, by where it was at its first month end (an open
        stage: ``moved_on``; already won or lost).
    """
    d = durations
    top = int(max_months)
    rows = []
    for st in [ENTRY, *map(str, stages)]:
        x = d[d["stage"] == st]
        left = np.minimum(x["months"].to_numpy(float), top)
        win = np.minimum(x["months_to_win"].to_numpy(float), top)
        for m in range(top + 1):
            at = left == m
            rows.append({"stage": st, "months": m,
                         "moved_on": int((at & (x["exit"] == "moved on").to_numpy()).sum()),
                         "won": int((at & (x["exit"] == "won").to_numpy()).sum()),
                         "lost": int((at & (x["exit"] == "lost").to_numpy()).sum()),
                         "to_win": int((win == m).sum())})
    return pd.DataFrame(rows)
