"""Ordered funnels on embedded DuckDB: one sorted read, then one vectorised pass per step.

Why a second path
-----------------
The portable Ibis path (:mod:`funnel_models.events.builders`) materialises the event
sequence with running counts and follows every attempt through one equi-join per step.
On the 10M-event benchmark file (``benchmarks/bench_events.py``) that costs 2.4x the CPU
time of ClickHouse's ``windowFunnel``: the window sort over string keys, the temporary
table and four hash joins over 1.9M attempts. Here DuckDB only filters, projects and sorts
the funnel events (one ``ORDER BY`` on integer keys, written with Ibis), and the greedy
chains are found by one NumPy pass per step over the sorted rows, streamed in chunks of
whole users (memory stays bounded) and computed on worker threads while DuckDB converts
the next chunk. The numbers are in ``ARCHITECTURE.md`` and printed by the benchmark.

It serves the hot case only (:func:`supports`): ordered funnels whose steps name distinct
events, without exclusions or optional steps, on DuckDB. Everything else (strict and
unordered funnels, exclusions, optional steps, repeated step events, Spark and other
engines) runs on the Ibis path. Both give identical results (tests/test_events_scan.py).

The sort
--------
Sorting on the user id strings costs DuckDB more than everything else here, so rows are
sorted by the 64-bit hash of the key (user, plus the breakdown value with
``attribution="all"``), then time, then step. Rows of one key are then contiguous and in
the engine's total order (:mod:`funnel_models.events.engine`: time, step, breakdown value;
each event matches one step when the step events are distinct) except for two cases the
client repairs exactly: two keys sharing a hash (their rows interleave; the run of that hash
is re-sorted by key, keeping time order) and events of one key tied on time and step (the
one with the smallest breakdown value comes first; only which row's value and properties
are reported depends on it).

The pass
--------
Follow the attempts waiting for step ``k`` (they filled step ``k - 1`` and not yet step
``k``): the next step-``k`` event either fills step ``k`` for all of them (those whose
window still covers it) or ends them, and from then on they share every fill. So only the
waiting attempt with the latest start matters: it survives longest, and wins the ties. An
attempt's start is represented by the first step-0 event at its time (later simultaneous
step-0 events give the same chain and lose the tie). Attempts enter the waiting set in the
order of their starts, so the latest start is the last one that entered:

* the step-0 "fills" are the first step-0 event of each (user, time);
* a step-``k`` event fills step ``k`` when the last step-``(k-1)`` fill before it belongs
  to the same user, comes after the previous step-``k`` event, and its attempt started at
  most one window before it; it inherits that attempt's start.

Each user's counted attempt is the one that reached the furthest step first (the latest
start among those, by the rule above); its earlier fills are found by following the
parent pointers back. With no step-1 fill it is the user's first step-0 event.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .builders import event_columns, event_filter, key_cols, matcher
from .query import FunnelQuery

__all__ = ["supports", "sorted_events", "funnel_users", "exact_groups", "Span", "CHUNK_ROWS"]

#: Rows per processed chunk (whole users; a larger user makes a larger chunk).
CHUNK_ROWS = 1 << 18
#: Rows per Arrow batch read from DuckDB.
BATCH_ROWS = 1 << 16


@ibis.udf.scalar.builtin(name="hash")
def _hash(x: dt.string) -> dt.uint64:  # pragma: no cover - compiled to SQL
    """DuckDB's 64-bit hash (Ibis' own ``hash()`` goes through a slow BIT cast)."""


def supports(q: FunnelQuery, backend: str) -> bool:
    """True when this path computes ``q`` on ``backend`` (see the module docstring)."""
    events = [s.event for s in q.steps]
    return (backend == "duckdb" and q.order == "ordered" and not q.exclusions
            and not q.optional and len(set(events)) == len(events))


def sorted_events(t: ibis.Table, q: FunnelQuery, ts: ibis.Value) -> ibis.Table:
    """The funnel events sorted by hashed key, time and step (module docstring).

    Columns: ``user_id`` (string), ``bd`` (breakdown value or null), ``us`` (epoch
    microseconds), ``s`` (the step the event matches), ``p{i}`` (properties) and ``h0``
    (``h1``): the hash of ``user_id`` (and of ``bd`` with ``attribution="all"``).
    """
    ms = [matcher(t, s, q.event_col) for s in q.steps]
    cols = event_columns(t, q, ts, "duckdb")
    cols["s"] = ibis.cases(*[(m, i) for i, m in enumerate(ms)]).cast("int8")
    e = t.filter(*event_filter(t, q, ts, ms)).select(**cols)
    hashes = {f"h{i}": _hash(e[k]) for i, k in enumerate(key_cols(q))}
    return e.mutate(**hashes).order_by([*hashes, "us", "s"])


@dataclass
class Span:
    """First and last event time (epoch microseconds) and the number of events read."""

    lo: int | None = None
    hi: int | None = None
    n: int = 0

    def add(self, us: np.ndarray) -> None:
        """Account for one chunk's event times."""
        if len(us):
            lo, hi = int(us.min()), int(us.max())
            self.lo = lo if self.lo is None else min(self.lo, lo)
            self.hi = hi if self.hi is None else max(self.hi, hi)
            self.n += len(us)


def funnel_users(events: ibis.Table, q: FunnelQuery,
                 chunk_rows: int | None = None) -> tuple[pa.Table, Span]:
    """Each user's counted attempt, from :func:`sorted_events`, streamed in chunks of at
    least ``chunk_rows`` rows (default :data:`CHUNK_ROWS`).

    Returns
    -------
    (Table, Span)
        One row per user who entered the funnel (per user and value with
        ``attribution="all"``): ``user_id``, ``breakdown`` (attributed value, null when
        missing), ``t{k}`` (epoch microseconds of the event filling step ``k``, null when
        not reached) and ``p{i}`` (the step-0 event's properties); and the events' span.
    """
    hcols = [f"h{i}" for i in range(len(key_cols(q)))]
    span, parts = Span(), []
    # the chunks' passes run on two worker threads while DuckDB converts the next chunk
    # (NumPy and Arrow release the GIL); at most four chunks wait, so memory stays bounded
    with _batches(events) as reader, ThreadPoolExecutor(max_workers=2) as pool:
        pending: list[Future] = []
        for tab in _whole_runs(reader, hcols, chunk_rows or CHUNK_ROWS):
            span.add(tab.column("us").to_numpy())
            pending.append(pool.submit(_users, tab, q))
            if len(pending) > 3:
                parts.append(pending.pop(0).result())
        parts.extend(f.result() for f in pending)
    if not parts:
        parts.append(_users(events.schema().to_pyarrow().empty_table(), q))
    return pa.concat_tables(parts), span


def _batches(events: ibis.Table) -> pa.RecordBatchReader:
    """The rows of ``events`` as a stream of Arrow batches, in order.

    Ibis' ``to_pyarrow_batches`` calls a cursor method DuckDB 2 removed; the relation Ibis
    builds for ``to_pyarrow`` (in-memory tables registered) streams instead.
    """
    backend = events._find_backend(use_default=True)
    return backend._to_duckdb_relation(events).to_arrow_reader(BATCH_ROWS)


def _changes(cols: list[Any]) -> np.ndarray:
    """True where a row differs from the row before in any of ``cols`` (first row: True)."""
    m = len(cols[0])
    new = np.zeros(m, dtype=bool)
    new[:1] = True
    for col in cols:
        if isinstance(col, np.ndarray):
            new[1:] |= col[1:] != col[:-1]
        else:
            diff = pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, m - 1)), True)
            new[1:] |= diff.to_numpy(zero_copy_only=False)
    return new


def _whole_runs(reader: pa.RecordBatchReader, hcols: list[str],
                chunk_rows: int) -> Iterator[pa.Table]:
    """Chunks of at least ``chunk_rows`` sorted rows holding whole runs of one hash."""
    buf: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        buf.append(batch)
        rows += batch.num_rows
        if rows < chunk_rows:
            continue
        tab = pa.Table.from_batches(buf, schema=reader.schema).combine_chunks()
        last = int(np.flatnonzero(_changes([tab.column(h).to_numpy() for h in hcols]))[-1])
        if last == 0:              # one run so far: keep reading
            continue
        yield tab.slice(0, last)
        buf = tab.slice(last).to_batches()
        rows = tab.num_rows - last
    if rows:
        yield pa.Table.from_batches(buf, schema=reader.schema).combine_chunks()


def exact_groups(tab: pa.Table, keys: list[str], hcols: list[str]) -> tuple[pa.Table, np.ndarray]:
    """Rows of each key made contiguous, and True where a row starts a key.

    Keys sharing a hash have interleaved rows; each such run of one hash is re-sorted by
    key, keeping the rows' order within a key (module docstring).
    """
    hnew = _changes([tab.column(h).to_numpy() for h in hcols])
    new = _changes([tab.column(k) for k in keys])
    clash = new & ~hnew
    if not clash.any():
        return tab, new | hnew
    run = np.cumsum(hnew) - 1
    rows = np.flatnonzero(np.isin(run, run[clash]))
    sub = pa.table({"run": run[rows], **{k: tab.column(k).take(rows) for k in keys},
                    "i": np.arange(len(rows))})
    order = pc.sort_indices(sub, [("run", "ascending"), *[(k, "ascending") for k in keys],
                                  ("i", "ascending")]).to_numpy()
    perm = np.arange(tab.num_rows)
    perm[rows] = rows[order]
    tab = tab.take(perm)
    return tab, _changes([tab.column(k) for k in keys]) | hnew


def _fills(gid: np.ndarray, us: np.ndarray, s: np.ndarray, q: FunnelQuery
           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per step ``k``: the rows filling it (ascending) and the position of each one's parent
    among the step-``(k-1)`` fills (module docstring)."""
    zero = s == 0
    dup = np.zeros(len(s), dtype=bool)     # a step-0 event at the same time as the one before
    dup[1:] = zero[1:] & zero[:-1] & (us[1:] == us[:-1]) & (gid[1:] == gid[:-1])
    f = np.flatnonzero(zero & ~dup)
    start = us[f]                          # when each fill's attempt started
    fills, parents = [f], [np.zeros(0, dtype=np.int64)]
    for k in range(1, q.n):
        e = np.flatnonzero(s == k) if len(f) else f
        j = np.searchsorted(f, e) - 1          # the last step-(k-1) fill before e
        jj = np.maximum(j, 0)
        prev = np.empty_like(e)                # the step-k event before e
        prev[:1], prev[1:] = -1, e[:-1]
        cand = f[jj]
        ok = (j >= 0) & (cand > prev) & (gid[cand] == gid[e])
        ok &= us[e] <= start[jj] + q.window_us
        f, start = e[ok], start[jj[ok]]
        fills.append(f)
        parents.append(jj[ok])
    return fills, parents


def _counted(fills: list[np.ndarray], gid: np.ndarray, n_groups: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the furthest step filled (-1: never entered) and the position, among that
    step's fills, of the first one (the counted attempt's fill)."""
    level = np.full(n_groups, -1, dtype=np.int64)
    pos = np.zeros(n_groups, dtype=np.int64)
    for k in range(len(fills) - 1, -1, -1):
        g = gid[fills[k]]
        if len(g) == 0:
            continue
        first = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
        gk = g[first]
        fresh = level[gk] < 0
        level[gk[fresh]] = k
        pos[gk[fresh]] = first[fresh]
    return level, pos


def _chains(fills: list[np.ndarray], parents: list[np.ndarray], level: np.ndarray,
            pos: np.ndarray) -> np.ndarray:
    """Row of the event filling each step of each group's counted attempt (-1: not reached),
    shape ``(n, groups)``: walk back from the furthest fill through the parents."""
    rows = np.full((len(fills), len(level)), -1, dtype=np.int64)
    for top in range(len(fills)):
        groups = np.flatnonzero(level == top)
        p = pos[groups]
        for k in range(top, -1, -1):
            rows[k, groups] = fills[k][p]
            p = parents[k][p] if k else p
    return rows


def _first_by_value(bd: pa.Array, new: np.ndarray, us: np.ndarray, s: np.ndarray,
                    rows: np.ndarray) -> np.ndarray:
    """``rows`` (first rows of runs tied on key, time and step; -1 kept) replaced by the row
    of their run with the smallest breakdown value, nulls last (the engine's order)."""
    tied = np.zeros(len(us), dtype=bool)   # the row continues the run of the row before
    tied[1:] = ~new[1:] & (us[1:] == us[:-1]) & (s[1:] == s[:-1])
    if not tied.any():
        return rows
    start = np.flatnonzero(~tied)
    length = np.diff(np.append(start, len(us)))
    run = np.cumsum(~tied) - 1
    hit = rows[rows >= 0]
    runs = np.unique(run[hit][length[run[hit]] > 1])
    if len(runs) == 0:
        return rows
    n = length[runs]
    members = np.repeat(start[runs], n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    values = bd.take(members)
    sub = pa.table({"run": np.repeat(runs, n), "missing": values.is_null(), "bd": values})
    order = pc.sort_indices(sub, [("run", "ascending"), ("missing", "ascending"),
                                  ("bd", "ascending")]).to_numpy()
    winner = np.full(len(start), -1, dtype=np.int64)
    firsts = np.flatnonzero(np.concatenate(([True], np.diff(sub.column("run").to_numpy()
                                                           [order]) != 0)))
    winner[runs] = members[order[firsts]]
    out = rows.copy()
    swap = (rows >= 0) & (winner[run[np.maximum(rows, 0)]] >= 0)
    out[swap] = winner[run[rows[swap]]]
    return out


def _take(col: pa.Array, rows: np.ndarray) -> pa.Array:
    return col.take(pa.array(rows, mask=rows < 0))


def _users(tab: pa.Table, q: FunnelQuery) -> pa.Table:
    """The per-user table of one chunk of whole hash runs (see :func:`funnel_users`)."""
    tab, new = exact_groups(tab, key_cols(q), [f"h{i}" for i in range(len(key_cols(q)))])
    us = tab.column("us").to_numpy()
    s = tab.column("s").to_numpy(zero_copy_only=False)
    gid = np.cumsum(new, dtype=np.int32 if len(new) < 2**31 else np.int64) - 1
    fills, parents = _fills(gid, us, s, q)
    starts = np.flatnonzero(new)
    level, pos = _counted(fills, gid, len(starts))
    entered = level >= 0
    level, pos, starts = level[entered], pos[entered], starts[entered]
    rows = _chains(fills, parents, level, pos)
    if q.by_all:
        src = starts
    elif q.attribution == "last_touch":
        src = rows[level, np.arange(len(level))]
    else:
        src = rows[q.attribution_step or 0]
    bd, first = tab.column("bd").combine_chunks(), rows[0]
    if q.breakdown and not q.by_all:
        src = _first_by_value(bd, new, us, s, src)
        first = _first_by_value(bd, new, us, s, first) if q.properties else first
    cols: dict[str, Any] = {"user_id": _take(tab.column("user_id"), starts),
                            "breakdown": _take(bd, src)}
    for k in range(q.n):
        r = rows[k]
        cols[f"t{k}"] = pa.array(us[np.maximum(r, 0)], mask=r < 0, type=pa.int64())
    cols.update({f"p{i}": _take(tab.column(f"p{i}"), first) for i in range(len(q.properties))})
    return pa.table(cols)
