"""Follow-up questions about a funnel, answered by re-querying its event source.

* :func:`journey` -- every event of one user;
* :func:`skipped` -- the open-funnel view: users who did a step without the previous one;
* :func:`correlation` -- which events and property values go with converting rather than
  dropping off (PostHog's correlation analysis): per event and per property value, the
  users who converted and who dropped off among those who did it, the odds ratio and a
  Fisher exact test.

Each takes the :class:`~funnel_models.events.source.SourceRef` and the
:class:`~funnel_models.events.query.FunnelQuery` the result holds, opens the source again and
runs on its engine; only small aggregates come back.
"""
from __future__ import annotations

from typing import Any, Sequence

import ibis
import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from ..errors import FunnelDataError
from .builders import filter_predicates, matcher
from .executor import backend_name, time_expr
from .query import NONE_LABEL, FunnelQuery
from .source import SourceRef, epoch_us

__all__ = ["journey", "skipped", "correlation"]


def journey(ref: SourceRef, q: FunnelQuery, user: Any) -> pd.DataFrame:
    """Every event of ``user`` in the source (no filters), sorted by time.

    Columns ``user_id``, ``timestamp``, ``event`` and the property columns the funnel used.
    """
    t = ref.open()
    cols = [c for c in dict.fromkeys([q.user_col, q.time_col, q.event_col, *sorted(q.columns())])
            if c in t.columns]
    sel = t.filter(t[q.user_col].cast("string") == str(user)).select(*cols)
    out = sel.mutate(_ts=time_expr(sel, q)).order_by("_ts").drop("_ts").execute()
    return out.rename(columns={q.user_col: "user_id", q.time_col: "timestamp",
                               q.event_col: "event"}).reset_index(drop=True)


def skipped(ref: SourceRef, q: FunnelQuery) -> pd.DataFrame:
    """Per step: users who did it, who did it without the previous step, without step 0."""
    t = ref.open()
    ts = time_expr(t, q)
    preds = filter_predicates(t, q, ts)
    t = t.filter(*preds) if preds else t
    flags = {f"m{k}": matcher(t, s, q.event_col).ifelse(1, 0) for k, s in enumerate(q.steps)}
    per_user = t.select(user_id=t[q.user_col].cast("string"), **flags)
    did = per_user.group_by("user_id").aggregate(
        **{f"d{k}": per_user[f"m{k}"].max() for k in range(q.n)})
    aggs: dict[str, Any] = {f"did{k}": did[f"d{k}"].sum() for k in range(q.n)}
    for k in range(1, q.n):
        aggs[f"sp{k}"] = ((did[f"d{k}"] == 1) & (did[f"d{k - 1}"] == 0)).ifelse(1, 0).sum()
        aggs[f"sf{k}"] = ((did[f"d{k}"] == 1) & (did.d0 == 0)).ifelse(1, 0).sum()
    row = did.aggregate(**aggs).execute().iloc[0]

    def val(name: str) -> int:
        v = row[name]
        return 0 if v is None or pd.isna(v) else int(v)

    return pd.DataFrame({
        "step": list(q.names), "users_did_step": [val(f"did{k}") for k in range(q.n)],
        "skipped_previous": [0] + [val(f"sp{k}") for k in range(1, q.n)],
        "skipped_first": [0] + [val(f"sf{k}") for k in range(1, q.n)]})


def _periods(result: Any, k: int) -> pd.DataFrame:
    """Per user: the span searched for correlated events and whether the user converted."""
    u = result.users.drop_duplicates("user_id")
    t0 = u[result.steps[0]]
    tk = u[result.steps[k]]
    hi = tk.where(tk.notna(), t0 + result.window)
    us = 1_000
    return pd.DataFrame({
        "_uid": u["user_id"].astype(str).to_numpy(),
        "_lo": (t0.astype("int64") // us).to_numpy(),
        "_hi": (hi.astype("int64") // us).to_numpy(),
        "_conv": tk.notna().astype("int64").to_numpy()})


def _odds(tab: pd.DataFrame, success_total: int, failure_total: int) -> pd.DataFrame:
    s, f = tab["success_count"].to_numpy(), tab["failure_count"].to_numpy()
    tab["odds_ratio"] = ((s + 1) / (f + 1)) / ((success_total - s + 1) / (failure_total - f + 1))
    tab["p_value"] = [fisher_exact([[a, b], [success_total - a, failure_total - b]])[1]
                      for a, b in zip(s, f)]
    tab["correlation"] = np.where(tab["odds_ratio"] >= 1, "success", "failure")
    return tab


def correlation(result: Any, properties: Sequence[str] = (), *, to_step: int | str = -1,
                min_users: int = 1) -> pd.DataFrame:
    """Events and property values that go with converting rather than dropping off.

    For every user counted at step 0, the events searched are those from the user's step-0
    time to the time they reached ``to_step`` (converters) or to the end of the conversion
    window (users who dropped off). Events matching a funnel step are left out. For each
    event name, and for each value of each column in ``properties``, the table counts the
    converters (``success_count``) and drop-offs (``failure_count``) who had at least one
    such event. ``odds_ratio`` is PostHog's: ``((s + 1) / (f + 1)) / ((S - s + 1) /
    (F - f + 1))`` with ``S``, ``F`` the converters and drop-offs in total (a prior count of
    one avoids division by zero); ``p_value`` is the two-sided Fisher exact test of the
    2x2 table. Rows are sorted by p-value.

    Parameters
    ----------
    result : FunnelResult
    properties : list of str
        Event property columns whose values to test (besides event names).
    to_step : int or str
        The conversion target (default the last step).
    min_users : int
        Leave out events/values done by fewer users.

    Returns
    -------
    DataFrame
        ``kind`` (``"event"``/``"property"``), ``name`` (event, or ``"column=value"``),
        ``success_count``, ``failure_count``, ``odds_ratio``, ``p_value``, ``correlation``
        (``"success"`` when the odds ratio is at least 1).
    """
    q: FunnelQuery = result.query
    k = result._idx(to_step)
    if k == 0:
        raise FunnelDataError("correlation: to_step must come after step 0, e.g. to_step=-1.")
    per = _periods(result, k)
    if per.empty:
        raise FunnelDataError("correlation: nobody entered the funnel, nothing to compare.")
    t = result.source.open()
    missing = [p for p in properties if p not in t.columns]
    if missing:
        raise FunnelDataError(f"correlation: unknown column(s) {missing}; the columns are "
                              f"{list(t.columns)}.")
    ts = time_expr(t, q)
    any_step = matcher(t, q.steps[0], q.event_col)
    for s in q.steps[1:]:
        any_step = any_step | matcher(t, s, q.event_col)
    ev = t.filter(~any_step).select(_uid=t[q.user_col].cast("string"),
                                    _us=epoch_us(ts, backend_name(t)),
                                    _ev=t[q.event_col].cast("string"),
                                    **{f"_p{i}": t[p].cast("string") for i, p in enumerate(properties)})
    per_t = ibis.memtable(per)
    j = ev.join(per_t, [ev._uid == per_t._uid, ev._us >= per_t._lo, ev._us <= per_t._hi])
    frames = [_count(j, "_ev", "event", lambda v: v)]
    for i, p in enumerate(properties):
        frames.append(_count(j, f"_p{i}", "property", lambda v, p=p: f"{p}={v}"))
    tab = pd.concat(frames, ignore_index=True)
    tab = tab[tab["success_count"] + tab["failure_count"] >= min_users]
    tab = _odds(tab.reset_index(drop=True), int(per["_conv"].sum()),
                int((per["_conv"] == 0).sum()))
    return tab.sort_values(["p_value", "name"], kind="stable").reset_index(drop=True)


def _count(j: ibis.Table, col: str, kind: str, label: Any) -> pd.DataFrame:
    users = j.select(v=j[col].fill_null(NONE_LABEL), u=j._uid, c=j._conv).distinct()
    agg = users.group_by("v").aggregate(success_count=users.c.sum(),
                                        failure_count=(1 - users.c).sum()).execute()
    return pd.DataFrame({"kind": kind, "name": [label(v) for v in agg["v"]],
                         "success_count": agg["success_count"].astype("int64").to_numpy(),
                         "failure_count": agg["failure_count"].astype("int64").to_numpy()})
