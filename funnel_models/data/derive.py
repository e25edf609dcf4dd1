"""Derived tables: pure functions from canonical stage history / snapshots.

Every function takes canonical frames (see ``ARCHITECTURE.md``) and a
:class:`~funnel_models.data.spec.FunnelSpec`, returns a new DataFrame and never mutates its input.

Month convention: ``month`` is the first day of a calendar month and stands for the
status at that month's end. A lead is observed at every month end from the month it
first enters to the month it closes (won or lost) or the cut-off, whichever is first.

Examples
--------
>>> import pandas as pd
>>> from funnel_models.data.spec import FunnelSpec
>>> spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
>>> h = pd.DataFrame({"lead_id": ["x", "x", "x"], "stage": ["A", "B", "W"],
...                   "entered_at": pd.to_datetime(["2024-01-05", "2024-02-10", "2024-02-20"])})
>>> snapshots_from_history(h, spec, cutoff="2024-03-31")[["month", "stage"]].values.tolist()
[[Timestamp('2024-01-01 00:00:00'), 'A'], [Timestamp('2024-02-01 00:00:00'), 'W']]
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import FunnelDataError, FunnelWarning
from .dates import cutoff_day, cutoff_end, from_month_index, month_index, month_start, through_cutoff
from .spec import ENTRY, LOST, WON, FunnelSpec

__all__ = [
    "month_start",
    "filter_frame",
    "snapshots_from_history",
    "stage_counts",
    "transitions",
    "time_in_stage",
    "open_pipeline",
    "skipped_stages",
    "cohorts",
    "segment_columns",
    "stage_entries",
]


def segment_columns(df: pd.DataFrame, spec: FunnelSpec) -> list[str]:
    """Attribute columns of ``spec`` that are present in ``df``."""
    return [a for a in spec.attributes if a in df.columns]


def filter_frame(
    df: pd.DataFrame,
    filters: Mapping[str, object] | None = None,
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    time_col: str | None = None,
) -> pd.DataFrame:
    """Keep rows whose attributes match ``filters`` and whose time lies in ``[start, end]``.

    Parameters
    ----------
    df : DataFrame
        Any canonical frame.
    filters : mapping, optional
        Column -> value or list of values, e.g. ``{"region": ["North", "East"]}``.
    start, end : date-like, optional
        Time frame on ``time_col`` (``entered_at`` or ``month`` by default): from ``start``
        on, through the whole day ``end`` (the cut-off rule of :mod:`funnel_models.data.dates`).
        For stage history, whole leads are kept or dropped by their first entry date,
        so a filter never cuts a lead's journey in half.
    """
    out = df
    for col, val in (filters or {}).items():
        if col not in out.columns:
            raise FunnelDataError(f"filter on column {col!r}, which is not in the data; "
                                  f"available columns: {list(out.columns)}")
        vals = [val] if isinstance(val, (str, int, float)) else list(val)  # type: ignore[arg-type]
        out = out[out[col].isin(vals)]
    if start is None and end is None:
        return out.copy()
    col = time_col or ("entered_at" if "entered_at" in out.columns else "month")
    t = pd.to_datetime(out[col])
    if col == "entered_at" and "lead_id" in out.columns:
        t = t.groupby(out["lead_id"]).transform("min")
    mask = pd.Series(True, index=out.index)
    if start is not None:
        mask &= t >= pd.Timestamp(start)
    if end is not None:
        mask &= t < cutoff_end(end)
    return out[mask].copy()


def _lead_attrs(history: pd.DataFrame, spec: FunnelSpec) -> pd.DataFrame:
    """Per-lead static attributes (first row of each lead) and deal value (last non-null)."""
    cols = segment_columns(history, spec)
    first = history.groupby("lead_id", sort=False)[cols].first() if cols else \
        pd.DataFrame(index=pd.Index(history["lead_id"].unique(), name="lead_id"))
    if "value" in history.columns:
        first["value"] = history.dropna(subset=["value"]).groupby("lead_id")["value"].last()
    return first


def snapshots_from_history(
    history: pd.DataFrame,
    spec: FunnelSpec,
    *,
    cutoff: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Monthly snapshots (status at each month end) from stage history.

    Parameters
    ----------
    history : DataFrame
        Canonical stage history (``lead_id, stage, entered_at`` + attributes).
    spec : FunnelSpec
        The funnel; ``spec.stale_after`` turns leads unchanged for that many months
        into ``LOST`` (with the first lost code) at that month.
    cutoff : date-like, optional
        Last observed day (rows dated on it are kept, later ones dropped); defaults to the
        day of the latest ``entered_at``. Months after the cut-off's month are not produced
        (the lead is right-censored).

    Returns
    -------
    DataFrame
        ``month, lead_id, stage`` + attributes (+ ``value``), one row per lead and month,
        the closing month included, nothing after it.
    """
    if history.empty:
        return pd.DataFrame(columns=["month", "lead_id", "stage", *segment_columns(history, spec)])
    h = history[["lead_id", "stage", "entered_at"]].copy()
    h["entered_at"] = pd.to_datetime(h["entered_at"])
    cut = cutoff_day(cutoff if cutoff is not None else h["entered_at"].max())
    h = through_cutoff(h, "entered_at", cut)
    h["m"] = month_index(h["entered_at"])
    rank = spec.rank()
    h["closed"] = h["stage"].map(rank).fillna(-1).to_numpy() >= spec.n_stages
    # the status at each month end is the last stage entered during or before that month
    h = h.sort_values(["lead_id", "entered_at", "m"], kind="stable")
    last_in_month = h.groupby(["lead_id", "m"], sort=False).tail(1)
    cut_m = int(month_index(pd.Series([cut]))[0])
    first_m = last_in_month.groupby("lead_id", sort=False)["m"].min()
    # a close is final: the month a lead first closes ends at that close, whatever follows
    first_close = h[h["closed"]].groupby("lead_id", sort=False).head(1).set_index("lead_id")
    close_m = first_close["m"]
    end_m = close_m.reindex(first_m.index).fillna(cut_m).astype(np.int64).clip(upper=cut_m)
    span = (end_m - first_m + 1).to_numpy()
    lead_ids = np.repeat(first_m.index.to_numpy(), span)
    offs = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
    months = np.repeat(first_m.to_numpy(), span) + offs
    grid = pd.DataFrame({"lead_id": lead_ids, "m": months})
    grid = grid.merge(last_in_month[["lead_id", "m", "stage"]], on=["lead_id", "m"], how="left")
    grid["stage"] = grid.groupby("lead_id", sort=False)["stage"].ffill()
    at_close = grid["m"].to_numpy() == grid["lead_id"].map(close_m).to_numpy()
    grid.loc[at_close, "stage"] = grid.loc[at_close, "lead_id"].map(first_close["stage"])
    if spec.stale_after:
        grid = _apply_stale(grid, spec)
    grid["month"] = from_month_index(grid["m"].to_numpy()).to_numpy()
    out = grid[["month", "lead_id", "stage"]]
    attrs = _lead_attrs(history, spec)
    if attrs.shape[1]:
        out = out.merge(attrs, left_on="lead_id", right_index=True, how="left")
    return out.sort_values(["lead_id", "month"], kind="stable").reset_index(drop=True)


def _apply_stale(grid: pd.DataFrame, spec: FunnelSpec) -> pd.DataFrame:
    """Mark open leads unchanged for ``spec.stale_after`` months as lost, drop later months."""
    lost_code = spec.lost[0] if spec.lost else LOST
    changed = grid["stage"].ne(grid.groupby("lead_id", sort=False)["stage"].shift())
    run_id = changed.cumsum()
    run_len = grid.groupby(run_id).cumcount()  # months already spent in the same status
    is_open = grid["stage"].isin(spec.codes)
    stale = is_open & (run_len >= spec.stale_after)
    first_stale = stale & ~stale.groupby(grid["lead_id"], sort=False).shift(fill_value=False)
    after = stale.groupby(grid["lead_id"], sort=False).cumsum() > 0
    grid = grid.copy()
    grid.loc[first_stale, "stage"] = lost_code
    return grid[~after | first_stale].reset_index(drop=True)


def transitions(
    snapshots: pd.DataFrame,
    spec: FunnelSpec,
    *,
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """Monthly transition counts between states, per segment.

    For each lead, consecutive monthly snapshots ``t-1 -> t`` give one transition
    ``from_stage -> to_stage`` counted in month ``t`` (stay, advance, skip, won, lost).
    The first snapshot of a lead gives ``ENTRY -> stage``. Nothing is counted after a
    lead closes. A lead that moves backwards is held at the furthest stage it reached
    (a :class:`~funnel_models.errors.FunnelWarning` gives the count). Gaps in a lead's
    months break its chain: the pair across a gap is not counted (warned).

    Parameters
    ----------
    snapshots : DataFrame
        Canonical snapshots.
    spec : FunnelSpec
    by : sequence of str
        Segment columns to keep (must be attributes present in ``snapshots``).

    Returns
    -------
    DataFrame
        ``month, from_stage, to_stage, age, *by, n`` with canonical states (open codes,
        ``WON``, ``LOST``, and ``ENTRY`` as a source). ``age`` is the number of whole
        months the lead had already spent in ``from_stage`` at the start of ``month``: 0
        when it reached that stage during the month before (and for ``ENTRY`` rows).
    """
    by = list(by)
    missing = [c for c in by if c not in snapshots.columns]
    if missing:
        raise FunnelDataError(f"transitions by {missing}: column(s) not in the snapshots; "
                              f"available: {list(snapshots.columns)}")
    s = snapshots[["month", "lead_id", "stage", *by]].copy()
    s["state"] = spec.canonical_states(s["stage"], where="snapshots")
    order = {c: i for i, c in enumerate(spec.states)}
    s["r"] = s["state"].map(order).astype(np.int64)
    s = s.sort_values(["lead_id", "month"], kind="stable")
    s["m"] = month_index(s["month"])
    # segment attributes are a property of the lead: take the first observed value
    for c in by:
        s[c] = s.groupby("lead_id", sort=False)[c].transform("first")
    g = s.groupby("lead_id", sort=False)
    # monotone chain: hold backward moves at the furthest open stage reached
    furthest = g["r"].cummax()
    backwards = int((s["r"] < furthest).sum())
    if backwards:
        warnings.warn(f"{backwards} snapshot row(s) show a lead moving backwards in the funnel; "
                      "they are counted at the furthest stage reached.", FunnelWarning, stacklevel=2)
    s["r"] = furthest
    # drop rows after the first closing row
    closed = s["r"] >= spec.n_stages
    after_close = closed.groupby(s["lead_id"], sort=False).shift(fill_value=False)
    after_close = after_close.groupby(s["lead_id"], sort=False).cummax()
    s = s[~after_close]
    g = s.groupby("lead_id", sort=False)
    prev_r = g["r"].shift()
    prev_m = g["m"].shift()
    gap = prev_m.notna() & (s["m"] - prev_m != 1)
    if gap.any():
        warnings.warn(f"{int(gap.sum())} lead-month pair(s) skip one or more months; those "
                      "transitions are not counted.", FunnelWarning, stacklevel=2)
    states = np.array(spec.states, dtype=object)
    from_stage = np.where(prev_r.isna(), ENTRY, states[prev_r.fillna(0).astype(np.int64).to_numpy()])
    s["from_stage"] = from_stage
    s["to_stage"] = states[s["r"].to_numpy()]
    # months already spent in the source stage: the run length of the previous month's
    # state, minus one (0 when the lead reached that stage during the previous month)
    new_run = prev_r.isna() | (s["r"] != prev_r) | gap
    run_pos = s.groupby(new_run.cumsum(), sort=False).cumcount()
    s["age"] = run_pos.groupby(s["lead_id"], sort=False).shift().fillna(0).astype(np.int64)
    s = s[~gap]
    keys = ["month", "from_stage", "to_stage", "age", *by]
    out = s.groupby(keys, sort=True, dropna=False).size().rename("n").reset_index()
    out["n"] = out["n"].astype(np.int64)
    return out


def stage_counts(snapshots: pd.DataFrame, spec: FunnelSpec, *, by: Sequence[str] = ()) -> pd.DataFrame:
    """Leads per stage at each month end, and the change since last month.

    Returns
    -------
    DataFrame
        ``month, stage, *by, count, change, pct_change``. Closing states count the leads
        that closed in that month. ``pct_change`` is NaN where last month was 0.
    """
    by = list(by)
    s = snapshots[["month", "stage", *by]].copy()
    s["stage"] = spec.canonical_states(s["stage"], where="snapshots")
    counts = s.groupby(["month", "stage", *by], dropna=False).size().rename("count")
    months = sorted(s["month"].unique())
    full_idx = [months, list(spec.states)]
    names = ["month", "stage"]
    if by:
        seg = s[by].drop_duplicates()
        grid = pd.MultiIndex.from_product(full_idx, names=names).to_frame(index=False).merge(seg, how="cross")
    else:
        grid = pd.MultiIndex.from_product(full_idx, names=names).to_frame(index=False)
    out = grid.merge(counts.reset_index(), on=["month", "stage", *by], how="left")
    out["count"] = out["count"].fillna(0).astype(np.int64)
    out["stage"] = pd.Categorical(out["stage"], categories=list(spec.states), ordered=True)
    out = out.sort_values([*by, "stage", "month"]).reset_index(drop=True)
    prev = out.groupby([*by, "stage"], observed=True, dropna=False)["count"].shift()
    out["change"] = out["count"] - prev
    with np.errstate(divide="ignore", invalid="ignore"):
        out["pct_change"] = np.where(prev > 0, 100.0 * out["change"] / prev, np.nan)
    out["stage"] = out["stage"].astype(str)
    return out.sort_values(["month", *by]).reset_index(drop=True)[["month", "stage", *by, "count", "change", "pct_change"]]


def _history_states(history: pd.DataFrame, spec: FunnelSpec) -> pd.DataFrame:
    h = history.copy()
    h["entered_at"] = pd.to_datetime(h["entered_at"])
    h["state"] = spec.canonical_states(h["stage"], where="history")
    h["r"] = h["state"].map({c: i for i, c in enumerate(spec.states)}).astype(np.int64)
    return h.sort_values(["lead_id", "entered_at", "r"], kind="stable")


def _history_through(history: pd.DataFrame, spec: FunnelSpec,
                     cutoff: str | pd.Timestamp | None) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The history with states (:func:`_history_states`) through the cut-off day, and that day
    (default: the latest ``entered_at``)."""
    h = _history_states(history, spec)
    cut = cutoff_day(cutoff) if cutoff is not None else h["entered_at"].max()
    return through_cutoff(h, "entered_at", cut), cut


def _is_snapshots(frame: pd.DataFrame) -> bool:
    """Monthly snapshots (``month, lead_id, stage``) rather than a stage history."""
    return "entered_at" not in frame.columns and {"month", "lead_id", "stage"} <= set(frame.columns)


def time_in_stage(history: pd.DataFrame, spec: FunnelSpec, *, cutoff: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Time each lead spent in each open stage it entered.

    Returns
    -------
    DataFrame
        ``lead_id, stage, entered_at, left_at, days, months, censored``. ``left_at`` is the
        next stage change, or the cut-off for leads still in the stage (``censored=True``).
        ``months`` counts month ends spent in the stage (0 if left within the month).
        Rows after the cut-off day are ignored.
    """
    h, cut = _history_through(history, spec, cutoff)
    nxt = h.groupby("lead_id", sort=False)["entered_at"].shift(-1)
    h = h.assign(left_at=nxt)
    h = h[h["r"] < spec.n_stages].copy()
    h["censored"] = h["left_at"].isna()
    h["left_at"] = h["left_at"].fillna(cut)
    h["days"] = (h["left_at"] - h["entered_at"]).dt.total_seconds() / 86400.0
    h["months"] = month_index(h["left_at"]) - month_index(h["entered_at"])
    h["stage"] = h["state"]
    return h[["lead_id", "stage", "entered_at", "left_at", "days", "months", "censored"]].reset_index(drop=True)


def open_pipeline(frame: pd.DataFrame, spec: FunnelSpec, *, cutoff: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """The open pipeline at a cut-off: each open lead, its stage and age in stage.

    Parameters
    ----------
    frame : DataFrame
        Canonical stage history, or monthly snapshots (then the pipeline is the cut-off
        month's snapshot, and the age is the run of consecutive months in that stage).
    spec : FunnelSpec
    cutoff : date-like, optional
        The cut-off day (default: the latest date in the data).

    Returns
    -------
    DataFrame
        ``lead_id, stage, entered_at, age_days, age_months`` + attributes (+ ``value``).
        ``age_months`` is the number of whole months already spent in the stage at the
        cut-off month (0 when the lead entered it in that month), as ``age`` in
        :func:`transitions`. From snapshots, ``entered_at`` is NaT and ``age_days`` NaN
        (only months are known), and a lead already in its stage in the first snapshot
        month gets the months seen (its age is left-censored). Leads unchanged for
        ``spec.stale_after`` months or more count as lost and are left out.
    """
    if _is_snapshots(frame):
        return _pipeline_from_snapshots(frame, spec, cutoff)
    h, cut = _history_through(frame, spec, cutoff)
    last = h.groupby("lead_id", sort=False).tail(1)
    last = last[last["r"] < spec.n_stages].copy()
    last["age_days"] = (cut - last["entered_at"]).dt.total_seconds() / 86400.0
    last["age_months"] = int(month_index(pd.Series([cut]))[0]) - month_index(last["entered_at"])
    return _pipeline_frame(last, frame, spec)


def _pipeline_from_snapshots(snapshots: pd.DataFrame, spec: FunnelSpec,
                             cutoff: str | pd.Timestamp | None) -> pd.DataFrame:
    s = snapshots[["month", "lead_id", "stage"]].copy()
    s["month"] = pd.to_datetime(s["month"])
    s = through_cutoff(s, "month", cutoff).sort_values(["lead_id", "month"], kind="stable")
    cut_m = int(month_index(pd.Series([month_start(cutoff) if cutoff is not None else s["month"].max()]))[0])
    s["m"] = month_index(s["month"])
    s["state"] = spec.canonical_states(s["stage"], where="snapshots")
    g = s.groupby("lead_id", sort=False)
    new_run = (s["stage"] != g["stage"].shift()) | (s["m"] - g["m"].shift() != 1)
    s["age_months"] = s.groupby(new_run.cumsum(), sort=False).cumcount().astype(np.int64)
    last = s.groupby("lead_id", sort=False).tail(1)
    last = last[(last["m"] == cut_m) & last["state"].isin(spec.codes)].copy()
    last["entered_at"] = pd.Series(pd.NaT, index=last.index, dtype="datetime64[ns]")
    last["age_days"] = np.nan
    return _pipeline_frame(last, snapshots, spec)


def _pipeline_frame(last: pd.DataFrame, source: pd.DataFrame, spec: FunnelSpec) -> pd.DataFrame:
    """Drop stale leads, name the stage by its state, add the leads' attributes."""
    if spec.stale_after:
        last = last[last["age_months"] < spec.stale_after]
    last = last.assign(stage=last["state"], age_months=last["age_months"].astype(np.int64))
    out = last[["lead_id", "stage", "entered_at", "age_days", "age_months"]]
    attrs = _lead_attrs(source, spec)
    if attrs.shape[1]:
        out = out.merge(attrs, left_on="lead_id", right_index=True, how="left")
    return out.reset_index(drop=True)


def skipped_stages(history: pd.DataFrame, spec: FunnelSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stages each lead skipped on its way, and skip counts per stage.

    Returns
    -------
    per_lead : DataFrame
        ``lead_id, from_stage, to_stage, skipped`` for every jump over one or more open
        stages (``skipped`` is the list of stage codes jumped over).
    per_stage : DataFrame
        ``stage, skipped_by, reached_by, skip_share``: leads that went past the stage
        without entering it, leads that entered it, and the skip share.
    """
    h = _history_states(history, spec)
    h = h[h["state"] != LOST]
    entry = pd.Series(-1, index=h.index)
    prev = h.groupby("lead_id", sort=False)["r"].shift().fillna(entry).astype(np.int64)
    jumps = h[(h["r"] - prev) > 1]
    codes = list(spec.states)
    rows = []
    for lead, p, r in zip(jumps["lead_id"], prev.loc[jumps.index], jumps["r"]):
        upto = min(r, spec.n_stages)
        skipped = codes[p + 1:upto]
        if skipped:
            rows.append((lead, ENTRY if p < 0 else codes[p], codes[r], skipped))
    per_lead = pd.DataFrame(rows, columns=["lead_id", "from_stage", "to_stage", "skipped"])
    skip_n = pd.Series(0, index=spec.codes, dtype=np.int64)
    for sk in per_lead["skipped"]:
        for c in sk:
            skip_n[c] += 1
    reached = h[h["r"] < spec.n_stages].groupby("state")["lead_id"].nunique().reindex(spec.codes).fillna(0).astype(np.int64)
    per_stage = pd.DataFrame({"stage": list(spec.codes), "skipped_by": skip_n.to_numpy(), "reached_by": reached.to_numpy()})
    tot = per_stage["skipped_by"] + per_stage["reached_by"]
    per_stage["skip_share"] = np.where(tot > 0, per_stage["skipped_by"] / tot.where(tot > 0, 1), 0.0)
    return per_lead, per_stage


def cohorts(frame: pd.DataFrame, spec: FunnelSpec, *, cutoff: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Entry cohorts with outcomes and right-censoring flags, one row per lead.

    Parameters
    ----------
    frame : DataFrame
        Canonical stage history, or monthly snapshots.
    spec, cutoff :
        As in :func:`open_pipeline`.

    Returns
    -------
    DataFrame
        ``lead_id, cohort (entry month), outcome ('WON'|'LOST'|'OPEN'), closed_at (the
        first month at a closing state), months_to_close, censored`` + attributes.
        ``censored`` is True for leads still open at the cut-off: their outcome is not yet known.
    """
    if _is_snapshots(frame):
        snaps = through_cutoff(frame, "month", cutoff).sort_values(["lead_id", "month"], kind="stable")
    else:
        snaps = snapshots_from_history(frame, spec, cutoff=cutoff)
    if snaps.empty:
        return pd.DataFrame(columns=["lead_id", "cohort", "outcome", "closed_at", "months_to_close", "censored"])
    s = snaps.assign(state=spec.canonical_states(snaps["stage"], where="snapshots"))
    first = s.groupby("lead_id", sort=False)["month"].min()
    closing = s[s["state"].isin([WON, LOST])].groupby("lead_id", sort=False).head(1).set_index("lead_id")
    out = pd.DataFrame({"lead_id": first.index, "cohort": first.to_numpy()})
    out["outcome"] = closing["state"].reindex(first.index).fillna("OPEN").to_numpy()
    out["closed_at"] = closing["month"].reindex(first.index).to_numpy()
    out["months_to_close"] = (month_index(out["closed_at"].fillna(out["cohort"])) - month_index(out["cohort"]))
    out.loc[out["outcome"] == "OPEN", "months_to_close"] = np.nan
    out["censored"] = out["outcome"] == "OPEN"
    attrs = _lead_attrs(frame, spec)
    if attrs.shape[1]:
        out = out.merge(attrs, left_on="lead_id", right_index=True, how="left")
    return out


def stage_entries(transitions_table: pd.DataFrame, *, by: Sequence[str] = ()) -> pd.DataFrame:
    """Leads entering each state per month (``month, stage, *by, count``).

    Counts every transition into a state from a different state (``ENTRY`` included):
    the aggregate table many teams keep ("MQLs this month, wins this month").
    """
    t = transitions_table[transitions_table["from_stage"] != transitions_table["to_stage"]]
    out = t.groupby(["month", "to_stage", *by], dropna=False)["n"].sum().rename("count").reset_index()
    return out.rename(columns={"to_stage": "stage"})
