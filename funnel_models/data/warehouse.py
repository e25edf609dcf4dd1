"""Monthly transition counts computed where the stage history lives (DuckDB, Spark, ...).

:func:`transitions_expr` builds ONE Ibis expression over a stage-history table (``lead_id,
stage, entered_at`` + segment columns) that yields exactly the table
``derive.transitions(derive.snapshots_from_history(history, spec, cutoff=c), spec, by=by)``
returns from pandas; :func:`warehouse_transitions` runs it and brings back only that small
count table. Nothing lead-level leaves the engine.

Semantics (the same as :mod:`funnel_models.data.derive`)
------------------------------------------------------
* Rows dated after the cut-off day are ignored (:mod:`funnel_models.data.dates`).
* A lead's status at a month end is the last stage it entered during or before that month;
  rows with the same timestamp are ordered by funnel rank (the furthest counts as the later,
  as :func:`funnel_models.data.readers.read_history` sorts them).
* A lead is observed from its first month to the month it first closes (enters a won or
  lost code; a close is final, whatever rows follow it) or the cut-off month. A lead moving backwards is held at the furthest
  state reached (a running maximum of the funnel rank).
* Each observed month gives one transition; the first month gives ``ENTRY -> state``.
  ``age`` is the number of whole months already spent in the source state.
* Segment values are a property of the lead: the first non-null value (by time, then rank).

How the query works
-------------------
Month-end rows -> running maximum rank -> *spells* (runs of one state: start month ``s``,
last month ``e``, next state). Spells are counted per ``(s, e, state, next, segments)``
before expanding: a spell gives ``ENTRY -> state`` at ``s`` (first spell only), ``state ->
state`` at months ``s+1..e`` with ages ``0..e-s-1``, and ``state -> next`` at ``e+1`` with
age ``e-s``. Only the expansion of the (small) spell counts touches month arithmetic.

``spec.stale_after`` is honoured: an open lead whose month-end status stays the same for
``stale_after`` months is counted as lost at that month (as ``snapshots_from_history``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from ..errors import FunnelDataError
from .engines import backend_name, epoch_us
from .dates import DateLike, cutoff_day, cutoff_end, from_month_index, month_index
from .spec import ENTRY, FunnelSpec

__all__ = ["canonical_history", "check_history", "transitions_expr", "warehouse_transitions",
           "won_values_expr", "pipeline_expr", "history_cutoff", "scoped_rows"]

_NEEDED = ("lead_id", "stage", "entered_at")


def _month_number(ts: ibis.Value) -> ibis.Value:
    """``year * 12 + month - 1`` (the month index of :func:`funnel_models.data.dates.month_index`)."""
    return ts.year().cast("int64") * 12 + ts.month().cast("int64") - 1


def _epoch_us(h: ibis.Table, ts: ibis.Value) -> ibis.Value:
    """Microseconds since the epoch of ``ts`` (a column of ``h``) on ``h``'s engine."""
    return epoch_us(ts, backend_name(h))


def _order_key(h: ibis.Table) -> ibis.Value:
    """One sortable integer per row: time in microseconds, then funnel rank (for argmin)."""
    return _epoch_us(h, h.entered_at) * 16 + h.r.cast("int64")


def canonical_history(
    table: ibis.Table,
    spec: FunnelSpec,
    *,
    mapping: Mapping[str, str] | None = None,
    label: str = "the stage history",
) -> ibis.Table:
    """The warehouse table under canonical column names, with rank ``r`` and month ``m``.

    Parameters
    ----------
    table : ibis.Table
        Stage history on any Ibis backend.
    spec : FunnelSpec
        The funnel; its ``columns`` mapping (canonical -> source column) is applied,
        then ``mapping`` on top.
    mapping : mapping, optional
        Canonical name -> column name in ``table``.
    label : str
        How error messages name the source.

    Returns
    -------
    ibis.Table
        ``lead_id`` (string), ``stage`` (string), ``entered_at`` (timestamp), the spec's
        attributes and ``value`` when present, ``r`` (funnel rank, NULL for undeclared
        codes) and ``m`` (month index).

    Raises
    ------
    FunnelDataError
        When a required column is missing (naming it and the columns there are).
    """
    names = {**dict(spec.columns), **dict(mapping or {})}
    cols = list(table.columns)
    wanted = {c: names.get(c, c) for c in (*_NEEDED, *spec.attributes)}
    wanted["value"] = names.get("value", spec.value or "value")
    missing = [f"{c!r}" + (f" (mapped from {s!r})" if s != c else "") for c, s in wanted.items()
               if c in _NEEDED and s not in cols]
    if missing:
        raise FunnelDataError(f"{label}: missing column(s) {', '.join(missing)}; the columns are {cols}. "
                              "Fix: rename them in the table, or map them in the spec's 'columns' "
                              "(e.g. columns: {lead_id: opportunity_id}).")
    keep = {c: s for c, s in wanted.items() if s in cols}
    t = table.select(**{c: table[s] for c, s in keep.items()})
    ts = t.entered_at
    typ = ts.type()
    if typ.is_string():     # unparseable text becomes NULL, which check_history reports
        ts = ts.try_cast(ibis.expr.datatypes.Timestamp())
    elif not typ.is_timestamp() or typ.timezone is not None or typ.scale not in (None, 6):
        # naive microsecond timestamps: DuckDB 2.0.1 returned shifted group keys for month
        # numbers of TIMESTAMP_NS columns; aware timestamps become naive in the engine's
        # session time zone (set it to the spec's, e.g. UTC)
        ts = ts.cast(ibis.expr.datatypes.Timestamp())
    rank = spec.rank()
    r = t.stage.cast("string").cases(*rank.items(), else_=ibis.null("int64"))
    return t.mutate(lead_id=t.lead_id.cast("string"), stage=t.stage.cast("string"), entered_at=ts,
                    r=r.cast("int64"), m=_month_number(ts))


def check_history(h: ibis.Table, spec: FunnelSpec, *, label: str = "the stage history") -> None:
    """Refuse rows a model cannot use: missing ids or dates, undeclared status codes.

    One aggregate query counts the problems; only when there are some are examples fetched.

    Raises
    ------
    FunnelDataError
        Naming the source, the column, a few offending values and the fix.
    """
    counts = h.aggregate(no_id=h.lead_id.isnull().sum(), no_date=h.entered_at.isnull().sum(),
                         unknown=(h.r.isnull() & h.stage.notnull()).sum(), no_stage=h.stage.isnull().sum()
                         ).execute().iloc[0]
    if int(counts["no_id"] or 0):
        raise FunnelDataError(f"{label}: column 'lead_id' is empty in {int(counts['no_id'])} row(s); "
                              "fix: drop those rows or fill the lead ids.")
    if int(counts["no_stage"] or 0):
        raise FunnelDataError(f"{label}: column 'stage' is empty in {int(counts['no_stage'])} row(s); "
                              "fix: drop those rows or fill the stage codes.")
    if int(counts["no_date"] or 0):
        raise FunnelDataError(f"{label}: column 'entered_at' is empty or not a date in "
                              f"{int(counts['no_date'])} row(s); fix: store ISO timestamps "
                              "(e.g. 2024-01-31 12:00:00) or drop those rows.")
    if int(counts["unknown"] or 0):
        codes = h.filter(h.r.isnull()).select("stage").distinct().limit(10).execute()["stage"]
        raise FunnelDataError(f"{label}: column 'stage' has unknown status code(s) {sorted(map(str, codes))}; "
                              f"declared codes are {list(spec.all_codes)}. Fix: add them to the spec "
                              "(stages, won or lost) or correct the data.")


def history_cutoff(h: ibis.Table) -> pd.Timestamp:
    """The default cut-off: the day of the latest ``entered_at`` (one scalar query)."""
    last = h.entered_at.max().execute()
    if last is None or pd.isna(last):
        raise FunnelDataError("the stage history has no rows with a date")
    return cutoff_day(pd.Timestamp(last))


def scoped_rows(h: ibis.Table, cutoff: DateLike, filters: Mapping[str, object] | None = None,
                start: DateLike | None = None, end: DateLike | None = None) -> ibis.Table:
    """Rows of a canonical history known at the cut-off day, matching ``filters`` (column ->
    value or list), with whole leads kept or dropped by their first entry date against
    ``start``/``end``, as :func:`funnel_models.data.derive.filter_frame` does."""
    h = h.filter(h.entered_at < cutoff_end(cutoff).to_pydatetime())
    for col, val in (filters or {}).items():
        if col not in h.columns:
            raise FunnelDataError(f"filter on column {col!r}, which is not in the data; "
                                  f"available columns: {[c for c in h.columns if c not in ('r', 'm')]}")
        vals = [val] if isinstance(val, (str, int, float)) else list(val)  # type: ignore[arg-type]
        h = h.filter(h[col].isin(vals))
    if start is None and end is None:
        return h
    first = h.entered_at.min().over(group_by=h.lead_id)
    h = h.mutate(_first=first)
    if start is not None:
        h = h.filter(h._first >= pd.Timestamp(start).to_pydatetime())
    if end is not None:
        h = h.filter(h._first < cutoff_end(end).to_pydatetime())
    return h.drop("_first")


def _month_ends(h: ibis.Table, spec: FunnelSpec) -> ibis.Table:
    """One row per lead and month with a row: the rank of the last stage entered in it, or,
    in a month with a close, of its first close (a close is final: nothing after it counts)."""
    key = _order_key(h)
    month = ibis.window(group_by=[h.lead_id, h.m])
    first_close = ibis.cases((h.r >= spec.n_stages, key), else_=ibis.null("int64")).min().over(month)
    h = h.mutate(_key=key, _ck=first_close)
    w = ibis.window(group_by=[h.lead_id, h.m], order_by=[h.entered_at.desc(), h.r.desc()])
    h = h.mutate(_k=ibis.row_number().over(w))
    pick = ibis.cases((h._ck.notnull(), h._key == h._ck), else_=h._k == 0)
    return h.filter(pick).select("lead_id", "m", "r").distinct()


def _stale(ends: ibis.Table, cut_m: int, spec: FunnelSpec) -> ibis.Table:
    """Month-end rows with ``spec.stale_after`` applied: a lead whose open status ran that many
    months becomes lost (first lost code's rank) in that month; later rows are dropped."""
    k, lost = int(spec.stale_after or 0), spec.n_stages + 1
    w = ibis.window(group_by=ends.lead_id, order_by=ends.m)
    e = ends.mutate(_prev=ends.r.lag().over(w))
    runs = e.filter(e._prev.isnull() | (e.r != e._prev))
    runs = runs.mutate(_next=runs.m.lead().over(ibis.window(group_by=runs.lead_id, order_by=runs.m)))
    closes = runs.filter(runs.r >= spec.n_stages).group_by("lead_id").aggregate(_close=runs.m.min())
    runs = runs.left_join(closes, "lead_id").select(runs, "_close")
    run_end = ibis.coalesce(runs._next - 1, runs._close, ibis.literal(cut_m))
    stale = runs.filter((runs.r < spec.n_stages) & (runs.m + k <= run_end))
    stale = stale.group_by("lead_id").aggregate(_stale=(stale.m + k).min())
    out = ends.left_join(stale, "lead_id").select(ends, "_stale")
    kept = out.filter(out._stale.isnull() | (out.m < out._stale)).select("lead_id", "m", "r")
    marks = stale.select(lead_id=stale.lead_id, m=stale._stale, r=ibis.literal(lost, "int64"))
    return kept.union(marks)


def _segments(h: ibis.Table, by: Sequence[str]) -> ibis.Table:
    """Per lead: first month and the first non-null value of each segment column."""
    return h.group_by("lead_id").aggregate(first_m=h.m.min(), **_first_values(h, by))


def _first_values(h: ibis.Table, cols: Sequence[str]) -> dict[str, Any]:
    """Aggregates: the first non-null value (by time, then rank) of each column, per group."""
    key = _order_key(h)
    return {c: h[c].argmin(key, where=h[c].notnull()) for c in cols}


def _spells(ends: ibis.Table, cut_m: int, spec: FunnelSpec) -> ibis.Table:
    """Runs of one (furthest) state per lead: ``lead_id, s, e, f, nf, first``."""
    closes = ends.filter(ends.r >= spec.n_stages).group_by("lead_id").aggregate(end_m=ends.m.min())
    e = ends.left_join(closes, "lead_id").select(ends, "end_m")
    e = e.mutate(end_m=ibis.coalesce(e.end_m, ibis.literal(cut_m, "int64")))
    e = e.filter(e.m <= e.end_m)
    running = ibis.window(group_by=e.lead_id, order_by=e.m, preceding=None, following=0)
    e = e.mutate(f=e.r.max().over(running))
    w = ibis.window(group_by=e.lead_id, order_by=e.m)
    e = e.mutate(_pf=e.f.lag().over(w))
    s = e.filter(e._pf.isnull() | (e.f != e._pf))
    w2 = ibis.window(group_by=s.lead_id, order_by=s.m)
    s = s.mutate(_ns=s.m.lead().over(w2), nf=s.f.lead().over(w2))
    return s.select("lead_id", s=s.m, e=ibis.coalesce(s._ns - 1, s.end_m), f=s.f, nf=s.nf,
                    first=s._pf.isnull())


def transitions_expr(
    table: ibis.Table,
    spec: FunnelSpec,
    *,
    cutoff: DateLike,
    by: Sequence[str] = (),
    filters: Mapping[str, object] | None = None,
    start: DateLike | None = None,
    end: DateLike | None = None,
    canonical: bool = False,
) -> ibis.Table:
    """The Ibis expression of monthly transition counts (see the module docstring).

    Parameters
    ----------
    table : ibis.Table
        Stage history; pass ``canonical=True`` when it is already the output of
        :func:`canonical_history`.
    spec : FunnelSpec
    cutoff : date-like
        The cut-off day (see :func:`history_cutoff` for the default).
    by : sequence of str
        Segment columns to count by.
    filters, start, end : optional
        Attribute filters and the time frame on each lead's first entry, as
        :func:`funnel_models.data.derive.filter_frame` applies them.
    canonical : bool
        ``table`` already has canonical columns, ``r`` and ``m``.

    Returns
    -------
    ibis.Table
        ``m`` (month index), ``fr`` (source rank, -1 for ``ENTRY``), ``tr`` (target rank),
        ``age``, ``*by``, ``n``: unevaluated; :func:`warehouse_transitions` runs it.
    """
    by = list(by)
    h = table if canonical else canonical_history(table, spec)
    missing = [c for c in by if c not in h.columns]
    if missing:
        raise FunnelDataError(f"transitions by {missing}: column(s) not in the stage history; "
                              f"available: {[c for c in h.columns if c not in ('r', 'm')]}")
    cut = cutoff_day(cutoff)
    cut_m = int(month_index(pd.Series([cut]))[0])
    h = scoped_rows(h, cut, filters, start, end)
    ends = _month_ends(h, spec)
    if spec.stale_after:
        ends = _stale(ends, cut_m, spec)
    sp = _spells(ends, cut_m, spec).join(_segments(h, by), "lead_id")
    c = sp.group_by(["s", "e", "f", "nf", "first", *by]).aggregate(n=sp.count())
    seg = {k: c[k] for k in by}
    entry = c.filter(c.first).select(m=c.s, fr=ibis.literal(-1, "int64"), tr=c.f,
                                     age=ibis.literal(0, "int64"), **seg, n=c.n)
    exits = c.filter(c.nf.notnull()).select(m=c.e + 1, fr=c.f, tr=c.nf, age=c.e - c.s, **seg, n=c.n)
    stays = c.filter(c.e > c.s).mutate(t=ibis.range(c.s + 1, c.e + 1).unnest())
    stays = stays.select(m=stays.t, fr=stays.f, tr=stays.f, age=stays.t - 1 - stays.s,
                         **{k: stays[k] for k in by}, n=stays.n)
    rows = entry.union(exits).union(stays)
    rows = rows.mutate(m=rows.m.cast("int64"), age=rows.age.cast("int64"))
    return rows.group_by(["m", "fr", "tr", "age", *by]).aggregate(n=rows.n.sum())


def warehouse_transitions(table: ibis.Table, spec: FunnelSpec, *, by: Sequence[str] = (),
                          **scope: Any) -> pd.DataFrame:
    """Run :func:`transitions_expr` (same arguments: ``cutoff`` and optionally ``filters``,
    ``start``, ``end``, ``canonical``) and return the table
    :func:`funnel_models.data.derive.transitions` gives.

    Returns
    -------
    DataFrame
        ``month, from_stage, to_stage, age, *by, n``, sorted like the pandas path.
    """
    by = list(by)
    raw = transitions_expr(table, spec, by=by, **scope).to_pandas()
    states = np.array([ENTRY, *spec.states], dtype=object)
    out = pd.DataFrame({
        "month": from_month_index(raw["m"].to_numpy(dtype=np.int64)).to_numpy(),
        "from_stage": states[raw["fr"].to_numpy(dtype=np.int64) + 1],
        "to_stage": states[raw["tr"].to_numpy(dtype=np.int64) + 1],
        "age": raw["age"].to_numpy(dtype=np.int64),
    })
    for k in by:    # missing segment values as NaN, as pandas' groupby(dropna=False) gives them
        vals = np.array(raw[k], dtype=object)
        vals[pd.isna(vals)] = np.nan
        out[k] = vals
    out["n"] = raw["n"].to_numpy(dtype=np.int64)
    keys = ["month", "from_stage", "to_stage", "age", *by]
    return out.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def won_values_expr(rows: ibis.Table, spec: FunnelSpec, *, cutoff: DateLike, by: Sequence[str] = ()) -> ibis.Table:
    """Won leads' deal values (``lead_id, value, *by``): the one lead-level table a fit needs.

    A lead counts as won when its status at the month it closes is a won code, and its value
    is the last non-null ``value`` (as :func:`funnel_models.models.inputs.prepare` takes them).
    ``rows`` is the output of :func:`scoped_rows` at ``cutoff`` and has a ``value`` column.
    """
    cut = cutoff_day(cutoff)
    h = rows
    ends = _month_ends(h, spec)
    if spec.stale_after:
        ends = _stale(ends, int(month_index(pd.Series([cut]))[0]), spec)
    first_close = ends.filter(ends.r >= spec.n_stages)
    w = ibis.window(group_by=first_close.lead_id, order_by=first_close.m)
    first_close = first_close.mutate(_k=ibis.row_number().over(w))
    won = first_close.filter((first_close._k == 0) & (first_close.r == spec.n_stages)).select("lead_id")
    out = won.join(_lead_attrs(h, by), "lead_id")
    return out.filter(out.value.notnull()).select("lead_id", "value", *by)


def _lead_attrs(h: ibis.Table, attrs: Sequence[str]) -> ibis.Table:
    """Per lead: the first non-null value of each attribute, the last non-null ``value``."""
    aggs = _first_values(h, attrs)
    if "value" in h.columns:
        key = _order_key(h)
        aggs["value"] = h.value.argmax(key, where=h.value.notnull())
    return h.group_by("lead_id").aggregate(**aggs) if aggs else h.select("lead_id").distinct()


def pipeline_expr(rows: ibis.Table, spec: FunnelSpec, *, cutoff: DateLike) -> ibis.Table:
    """The open pipeline at the cut-off, as :func:`funnel_models.data.derive.open_pipeline` gives it
    from stage history: one row per open lead (``lead_id, stage, entered_at, age_days,
    age_months`` + attributes + ``value``). ``rows`` is the output of :func:`scoped_rows` at
    ``cutoff``.
    """
    cut = cutoff_day(cutoff)
    cut_m = int(month_index(pd.Series([cut]))[0])
    h = rows
    w = ibis.window(group_by=h.lead_id, order_by=[h.entered_at.desc(), h.r.desc()])
    last = h.mutate(_k=ibis.row_number().over(w))
    last = last.filter((last._k == 0) & (last.r < spec.n_stages))
    cut_us = int(cut.value // 1000)
    last = last.select("lead_id", "entered_at", stage=last.stage,
                       age_days=(ibis.literal(cut_us, "int64") - _epoch_us(last, last.entered_at)).cast("float64")
                       / 86_400_000_000.0,
                       age_months=ibis.literal(cut_m, "int64") - last.m)
    if spec.stale_after:
        last = last.filter(last.age_months < int(spec.stale_after))
    attrs = [c for c in spec.attributes if c in h.columns]
    return last.join(_lead_attrs(h, attrs), "lead_id")
