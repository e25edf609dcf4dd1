"""Ibis expressions for event funnels: one per ordering, portable across engines.

Every builder turns the prepared event sequence (:func:`prepare`) into an *attempts* table:
one row per attempt with the position ``g{k}``, time ``t{k}`` (epoch microseconds) and
breakdown value ``b{k}`` of the event filling each step (null when not filled), the step-0
properties ``p{i}``, ``u0`` (the attempt's start), ``idx`` (furthest step filled) and
``reach`` (position of that fill). :func:`best_attempts` keeps each user's counted attempt.

Prepared sequence
-----------------
Events are put in a total order per user (per user and breakdown value with
``attribution="all"``): time, then the lowest step index the event matches (events matching
no step last), then the set of matched steps/exclusions, then the breakdown value. ``pos`` is
the rank in that order; ``c{k}`` counts the step-``k`` events up to and including the row
and ``cx{j}`` the exclusion-``j`` events. The earliest step-``k`` event after row ``r`` is
therefore the one whose ``c{k}`` equals ``c{k}(r) + 1``: each attempt's greedy chain is a
series of equi-joins, with no range join and no global sort. Strict funnels join on
``pos + 1`` instead; unordered funnels count each step's events in a numeric ``RANGE``
window of the conversion window's length.

Events that do not match a step (the "other events" of strict funnels, and exclusion events)
and share their timestamp with a step event of the same user are ignored, as PostHog ignores
them within a group of simultaneous events.

Only standard SQL is generated (``ROW_NUMBER``, windowed ``SUM``/``MAX`` with ``ROWS`` and
numeric ``RANGE`` frames, equi- and left joins); the one engine-specific expression is the
epoch-microseconds conversion (:func:`funnel_models.events.source.epoch_us`).
"""
from __future__ import annotations

from typing import Any, Callable

import ibis

from .query import FunnelQuery, Step
from .source import epoch_us

__all__ = ["prepare", "matcher", "filter_predicates", "event_columns", "event_filter", "key_cols",
           "ordered_attempts", "strict_attempts", "unordered_attempts", "best_attempts",
           "unordered_groups"]


def _cond(col: ibis.Value, v: Any) -> ibis.Value:
    if v is None:
        return col.isnull()
    if isinstance(v, (list, tuple, set, frozenset)):
        vals = list(v)
        return col.isin(vals) if vals else ibis.literal(False)
    return col == v


def matcher(t: ibis.Table, step: Step, event_col: str) -> ibis.Value:
    """Boolean expression: the row matches ``step``."""
    cond = t[event_col] == step.event
    for k, v in step.where.items():
        cond = cond & _cond(t[k], v)
    return cond


def key_cols(q: FunnelQuery) -> list[str]:
    """Partition columns: the user, plus the breakdown value with ``attribution="all"``."""
    return ["user_id", "bd"] if q.by_all else ["user_id"]


def filter_predicates(t: ibis.Table, q: FunnelQuery, ts: ibis.Value) -> list[ibis.Value]:
    """Predicates of ``filters``, ``start`` (inclusive) and ``end`` (exclusive)."""
    preds = [_cond(t[k], v) for k, v in q.filters]
    if q.start is not None:
        preds.append(ts >= ibis.literal(q.start.to_pydatetime()))
    if q.end is not None:
        preds.append(ts < ibis.literal(q.end.to_pydatetime()))
    return preds


def unordered_groups(q: FunnelQuery) -> tuple[list[int], list[int]]:
    """Group of each step (identical matchers share a group) and each group's capacity."""
    keys: list[tuple] = []
    groups = []
    for s in q.steps:
        if s.key() not in keys:
            keys.append(s.key())
        groups.append(keys.index(s.key()))
    return groups, [groups.count(g) for g in range(len(keys))]


def event_columns(t: ibis.Table, q: FunnelQuery, ts: ibis.Value, backend: str) -> dict[str, Any]:
    """The columns every path reads: ``user_id``, ``us`` (epoch microseconds), ``bd``
    (breakdown value or null) and the properties ``p{i}`` (strings but ``us``)."""
    cols: dict[str, Any] = {
        "user_id": t[q.user_col].cast("string"),
        "us": epoch_us(ts, backend),
        "bd": (t[q.breakdown].cast("string") if q.breakdown else ibis.null("string")),
    }
    cols.update({f"p{i}": t[p].cast("string") for i, p in enumerate(q.properties)})
    return cols


def event_filter(t: ibis.Table, q: FunnelQuery, ts: ibis.Value,
                 matchers: list[ibis.Value]) -> list[ibis.Value]:
    """Predicates keeping the events a funnel reads: filters and time frame, an event
    matching one of ``matchers`` (every event in strict funnels) and, with
    ``attribution="all"``, a breakdown value."""
    preds = filter_predicates(t, q, ts)
    if q.order != "strict":
        any_match = matchers[0]
        for m in matchers[1:]:
            any_match = any_match | m
        preds.append(any_match)
    if q.by_all:
        preds.append(t[q.breakdown].notnull())
    return preds


def _columns(t: ibis.Table, q: FunnelQuery, ts: ibis.Value,
             backend: str) -> tuple[dict[str, Any], list[ibis.Value]]:
    n = q.n
    ms = [matcher(t, s, q.event_col) for s in q.steps]
    xs = [matcher(t, e.step, q.event_col) for e in q.exclusions]
    cols = event_columns(t, q, ts, backend)
    cols["minstep"] = ibis.cases(*[(m, i) for i, m in enumerate(ms)], else_=n)
    cols["mask"] = sum((m.ifelse(2 ** i, 0) for i, m in enumerate(ms + xs)), ibis.literal(0))
    cols.update({f"m{i}": m.ifelse(1, 0) for i, m in enumerate(ms)})
    cols.update({f"x{j}": m.ifelse(1, 0) for j, m in enumerate(xs)})
    if q.order == "unordered":
        groups, _ = unordered_groups(q)
        first = [groups.index(g) for g in range(max(groups) + 1)]
        cols["grp"] = ibis.cases(*[(ms[f], g) for g, f in enumerate(first)], else_=-1)
    return cols, ms + xs


def prepare(t: ibis.Table, q: FunnelQuery, ts: ibis.Value, backend: str) -> ibis.Table:
    """The filtered, ordered event sequence with ``pos`` and running counts (module docstring)."""
    cols, matchers = _columns(t, q, ts, backend)
    preds = event_filter(t, q, ts, matchers)
    e = (t.filter(*preds) if preds else t).select(**cols)
    key = key_cols(q)
    if q.order == "strict" or q.exclusions:
        step_row = e.minstep < q.n
        tie = step_row.ifelse(1, 0).max().over(ibis.window(group_by=[*key, "us"]))
        e = e.mutate(_tie=tie).filter(step_row | (ibis._["_tie"] == 0)).drop("_tie")
    order = [e.us, e.minstep, e.mask, e.bd]
    w = ibis.window(group_by=[e[k] for k in key], order_by=order)
    run = ibis.window(group_by=[e[k] for k in key], order_by=order, rows=(None, 0))
    extra: dict[str, Any] = {"pos": ibis.row_number().over(w)}
    if q.order != "strict":
        extra.update({f"c{k}": e[f"m{k}"].sum().over(run) for k in range(1, q.n)})
    if q.order == "unordered" and q.exclusions:
        _, cap = unordered_groups(q)
        extra.update({f"cg{g}": (e.grp == g).ifelse(1, 0).sum().over(run) for g in range(len(cap))})
    extra.update({f"cx{j}": e[f"x{j}"].sum().over(run) for j in range(len(q.exclusions))})
    return e.mutate(**extra)


# ---------------------------------------------------------------------------- chains
def _on(att: ibis.Table, r: ibis.Table, q: FunnelQuery) -> list[ibis.Value]:
    preds = [att.user_id == r._u]
    if q.by_all:
        preds.append(att.bd_key == r._b)
    return preds


def _right(seq: ibis.Table, q: FunnelQuery, flag: str, **cols: Any) -> ibis.Table:
    sel: dict[str, Any] = {"_u": seq.user_id}
    if q.by_all:
        sel["_b"] = seq.bd
    sel.update(cols)
    return seq.filter(seq[flag] == 1).select(**sel)


def _carry(seq: ibis.Table, q: FunnelQuery, k: int) -> dict[str, Any]:
    """Columns a step-``k`` row passes on: its position, time, value and running counts."""
    out: dict[str, Any] = {f"g{k}": seq.pos, f"t{k}": seq.us, f"b{k}": seq.bd}
    if q.order != "strict":
        out.update({f"r{k}_c{m}": seq[f"c{m}"] for m in range(k + 1, q.n)})
    out.update({f"r{k}_x{j}": seq[f"cx{j}"] for j, e in enumerate(q.exclusions) if e.start == k})
    return out


def _starts(seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    s0 = seq.filter(seq.m0 == 1)
    cols: dict[str, Any] = {"user_id": s0.user_id, "bd_key": s0.bd, "u0": s0.us}
    cols.update({f"p{i}": s0[f"p{i}"] for i in range(len(q.properties))})
    return s0.select(**cols, **_carry(s0, q, 0))


def _join_step(att: ibis.Table, seq: ibis.Table, q: FunnelQuery, k: int,
               link: tuple[str, ibis.Value], bound: Callable | None) -> ibis.Table:
    """Left-join the row filling step ``k``: ``link=(right column, value it must equal)``."""
    col, value = link
    r = _right(seq, q, f"m{k}", _l=seq[col], **_carry(seq, q, k))
    preds = _on(att, r, q) + [r._l == value, r[f"t{k}"] <= att.u0 + q.window_us]
    if bound is not None:
        preds.append(bound(r))
    joined = att.left_join(r, preds)
    return joined.drop(*[c for c in ("_u", "_b", "_l") if c in joined.columns])


def ordered_attempts(seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    """Greedy earliest chain from every step-0 event (optional steps: between neighbours)."""
    att = _starts(seq, q)
    req = q.required
    for k in req[1:]:
        prev = max(r for r in req if r < k)
        att = _join_step(att, seq, q, k, (f"c{k}", att[f"r{prev}_c{k}"] + 1), None)
    for k in q.optional:
        prev = max(r for r in req if r < k)
        cands = [att[f"r{o}_c{k}"] for o in range(k - 1, prev, -1)] + [att[f"r{prev}_c{k}"]]
        nxt = [r for r in req if r > k]
        bound = None
        if nxt:
            g_next = att[f"g{nxt[0]}"]
            bound = (lambda r, g=g_next, k=k: g.isnull() | (r[f"g{k}"] < g))
        att = _join_step(att, seq, q, k, (f"c{k}", ibis.coalesce(*cands) + 1), bound)
    return _finish(att, seq, q)


def strict_attempts(seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    """Chains of consecutive events (optional steps may be skipped) from every step-0 event."""
    att = _starts(seq, q)
    req = q.required
    for k in range(1, q.n):
        prev = max(r for r in req if r < k)
        prev_pos = ibis.coalesce(*[att[f"g{o}"] for o in range(k - 1, prev - 1, -1)])
        att = _join_step(att, seq, q, k, ("pos", prev_pos + 1), None)
    return _finish(att, seq, q)


def _furthest(att: ibis.Table, q: FunnelQuery) -> tuple[ibis.Value, ibis.Value]:
    filled = [(att[f"g{k}"].notnull(), k) for k in range(q.n - 1, -1, -1)]
    idx = ibis.cases(*filled, else_=0)
    reach = ibis.cases(*[(c, att[f"g{k}"]) for c, k in filled], else_=att.g0)
    return idx, reach


def _excluded(att: ibis.Table, seq: ibis.Table, q: FunnelQuery,
              end_pos: dict[int, ibis.Value] | None = None) -> ibis.Table:
    """Flag attempts with exclusion event ``j`` after step ``start`` and before step ``end``.

    The first exclusion-``j`` event after the row filling step ``start`` (ordinal
    ``cx{j} + 1``) excludes the attempt when it comes before the row filling step ``end``,
    or, when that step was not reached, within the conversion window.
    """
    flags = []
    for j, ex in enumerate(q.exclusions):
        r = _right(seq, q, f"x{j}", _l=seq[f"cx{j}"], **{f"xg{j}": seq.pos, f"xt{j}": seq.us})
        att = att.left_join(r, _on(att, r, q) + [r._l == att[f"r{ex.start}_x{j}"] + 1])
        att = att.drop(*[c for c in ("_u", "_b", "_l") if c in att.columns])
        g_end = (end_pos or {}).get(j, att[f"g{ex.end}"])
        xg, xt = att[f"xg{j}"], att[f"xt{j}"]
        flags.append(xg.notnull() & ((g_end.notnull() & (xg < g_end))
                                     | (g_end.isnull() & (xt <= att.u0 + q.window_us))))
    excluded = ibis.literal(False)
    for f in flags:
        excluded = excluded | f
    return att.mutate(excluded=excluded)


def _finish(att: ibis.Table, seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    idx, reach = _furthest(att, q)
    att = att.mutate(idx=idx, reach=reach)
    return _excluded(att, seq, q) if q.exclusions else att.mutate(excluded=ibis.literal(False))


def best_attempts(att: ibis.Table, q: FunnelQuery) -> ibis.Table:
    """Each user's counted attempt among the attempts not excluded.

    The furthest step wins; among attempts reaching it, the first to get there; then the
    latest start (PostHog keeps only the latest attempt at each step).
    """
    ok = att.filter(~att.excluded)
    keys = [ok.user_id] + ([ok.bd_key] if q.by_all else [])
    w = ibis.window(group_by=keys, order_by=[ok.idx.desc(), ok.reach, ok.u0.desc(), ok.g0])
    ranked = ok.mutate(_rk=ibis.row_number().over(w))
    return ranked.filter(ranked._rk == 0).drop("_rk")


# ---------------------------------------------------------------------------- unordered
def _window_levels(seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    _, cap = unordered_groups(q)
    key = key_cols(q)
    s = seq.filter(seq.grp >= 0)
    wr = ibis.window(group_by=[s[k] for k in key], order_by=s.us, range=(0, q.window_us))
    cnt = {f"n{g}": (s.grp == g).ifelse(1, 0).sum().over(wr) for g in range(len(cap))}
    s = s.mutate(**cnt)
    lvl = sum((ibis.least(s[f"n{g}"], c) for g, c in enumerate(cap)), ibis.literal(0))
    out = s.mutate(lvl=lvl)
    cols = {"user_id": out.user_id, "bd_key": out.bd, "u0": out.us, "g0": out.pos, "lvl": out.lvl}
    cols.update({f"r0_x{j}": out[f"cx{j}"] for j in range(len(q.exclusions))})
    # events of group g before the window's start time: tied events at the start are inside
    # the window whichever of them starts it, so every tied start shares one completion
    same_start = ibis.window(group_by=[*[out[k] for k in key], out.us])
    cols.update({f"cb{g}": (out[f"cg{g}"] - (out.grp == g).ifelse(1, 0)).min().over(same_start)
                 for g in range(len(cap)) if q.exclusions})
    return out.select(**cols)


def _completion(att: ibis.Table, seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    """Position of the event completing every step of each window (null when incomplete)."""
    _, cap = unordered_groups(q)
    parts = []
    for g, c in enumerate(cap):
        r = seq.filter(seq.grp == g).select(_u=seq.user_id, _b=seq.bd, _l=seq[f"cg{g}"],
                                             **{f"e{g}": seq.pos})
        preds = [att.user_id == r._u, att[f"cb{g}"] + c == r._l]
        if q.by_all:
            preds.append(att.bd_key == r._b)
        att = att.left_join(r, preds).drop("_u", "_b", "_l")
        parts.append(att[f"e{g}"])
    done = ibis.greatest(*parts) if len(parts) > 1 else parts[0]
    return att.mutate(_done=(att.lvl == q.n).ifelse(done, ibis.null("int64")))


def unordered_attempts(seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    """Each user's best window ``[t, t + window]`` and the events filling its steps.

    The level of a window is the number of steps its events can fill (an event fills one
    step; identical matchers share their events); step ``k`` means "completed ``k + 1`` of
    the steps". The best window has the highest level, then the earliest start.
    """
    att = _window_levels(seq, q)
    if q.exclusions:
        att = _completion(att, seq, q)
        att = att.mutate(**{f"g{q.n - 1}": att._done})
        att = _excluded(att, seq, q).drop(f"g{q.n - 1}")
        att = att.filter(~att.excluded)
    key = [att.user_id] + ([att.bd_key] if q.by_all else [])
    w = ibis.window(group_by=key, order_by=[att.lvl.desc(), att.u0, att.g0])
    best = att.mutate(_rk=ibis.row_number().over(w))
    best = best.filter(best._rk == 0).select("user_id", "bd_key", "u0", "lvl")
    return _fills(best, seq, q)


def _fills(best: ibis.Table, seq: ibis.Table, q: FunnelQuery) -> ibis.Table:
    _, cap = unordered_groups(q)
    s = seq.filter(seq.grp >= 0)
    preds = [s.user_id == best.user_id, s.us >= best.u0, s.us <= best.u0 + q.window_us]
    if q.by_all:
        preds.append(s.bd == best.bd_key)
    j = s.join(best, preds).select(s.user_id, best.bd_key, best.u0, s.pos, s.us, s.bd, s.grp,
                                   *[s[f"p{i}"] for i in range(len(q.properties))])
    capg = ibis.cases(*[(j.grp == g, c) for g, c in enumerate(cap)], else_=0)
    j = j.mutate(_r=ibis.row_number().over(ibis.window(group_by=[j.user_id, j.bd_key, j.grp],
                                                       order_by=j.pos)), _cap=capg)
    j = j.filter(j._r < j._cap)
    j = j.mutate(_k=ibis.row_number().over(ibis.window(group_by=[j.user_id, j.bd_key],
                                                       order_by=j.pos)))
    aggs: dict[str, Any] = {}
    for k in range(q.n):
        hit = j._k == k
        aggs.update({f"g{k}": j.pos.max(where=hit), f"t{k}": j.us.max(where=hit),
                     f"b{k}": j.bd.max(where=hit)})
    aggs.update({f"p{i}": j[f"p{i}"].max(where=j._k == 0) for i in range(len(q.properties))})
    return j.group_by(["user_id", "bd_key", "u0"]).aggregate(**aggs)
