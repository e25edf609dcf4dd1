"""BASELINE ONLY: the hand-written DuckDB SQL event funnel as it was on main before the Ibis
rewrite (copied from git history, commit 462b03c, funnel_models/events/engine.py), kept so
benchmarks/bench_events.py can time the new path against it in the same process.
It returns the per-user table only. Not part of the package.

Original docstring follows.

Event-log funnels computed in DuckDB SQL.

:func:`funnel` turns a raw event log (one row per event: user, timestamp, event name,
properties) into a :class:`~funnel_models.events.result.FunnelResult`. The log never has
to fit in pandas: DataFrames are registered with DuckDB, Parquet/CSV paths are scanned
with ``read_parquet``/``read_csv_auto`` and DuckDB tables are queried in place. Only the
per-user result (one row per user who entered the funnel) is fetched into pandas.

Inputs
------
``events`` may be

* a :class:`pandas.DataFrame`;
* a path (``str``/``Path``) to a ``.parquet``/``.pq`` file, a directory or glob of Parquet
  files, or a ``.csv``/``.csv.gz``/``.tsv`` file;
* a tuple ``(con, "table_name")`` with a :class:`duckdb.DuckDBPyConnection`, or a table
  name together with ``con=con``.

Semantics (modelled on PostHog funnels)
---------------------------------------
Events of one user are put in a total order: timestamp, then the lowest step index the
event matches (events matching no step last), then the set of matched steps/exclusions,
then the breakdown value. Ties at the same timestamp are thus resolved in favour of funnel
progress; rows still tied are interchangeable for the funnel (except for carried
``properties``, taken from an arbitrary one of them).

* ``order="ordered"``: steps must happen in order; other events may happen in between.
  An *attempt* starts at every event matching step 0; each further step is filled by the
  earliest matching event strictly after the event that filled the previous step (so one
  event fills at most one step). Greedy earliest matching is optimal for a fixed start.
* ``order="strict"``: the step events must be consecutive in the user's full event stream:
  any other event of the user (after the filters) between two steps ends the attempt.
* ``order="unordered"``: an attempt is any window ``[t, t + window]``; its level is the
  number of steps that can be filled by distinct events inside it. Step ``k`` of an
  unordered funnel therefore means "completed ``k + 1`` of the steps" (as in PostHog).
  When two *different* matchers match the same event, the event is assigned to the first
  matching step group (identical matchers form one group with several slots).
* The conversion window is timed from the step-0 event of the attempt; an event exactly at
  the limit counts (``ts <= t0 + window``).
* Each user's furthest attempt counts (ties: the earliest attempt). Counts are unique
  users reaching at least each step.
* ``exclusions=[(event, a, b)]``: a user is removed from the whole funnel (as in PostHog)
  if, in the counted attempt, the excluded event happens after the event filling step
  ``a`` and before the event filling step ``b`` -- or, when step ``b`` was not reached,
  before the end of the conversion window.
* ``optional_steps``: ordered funnels only. Required steps are chained ignoring optional
  ones; an optional step counts when a matching event falls between the events filling
  its neighbouring required steps (inside the window). Step 0 cannot be optional.
* ``breakdown`` with ``attribution``: ``"first_touch"`` takes the property from the event
  filling step 0 of the counted attempt, ``"last_touch"`` from the event filling the
  furthest step, ``"step:N"`` (0-based) from the event filling step ``N`` (users who did
  not reach it get ``"(none)"``), ``"all"`` runs the funnel separately for every property
  value using only events carrying that value (a user may appear under several values;
  events with a missing value are ignored). Missing values show as ``"(none)"``.
* Filters (``start``/``end``/``filters``) apply to every event before the funnel is built,
  including the "other events" of strict mode. ``start`` is inclusive, ``end`` exclusive.

Differences from PostHog: no person merging or sessions; tie-breaking at equal timestamps
is deterministic (by step index); the counted attempt is chosen before exclusions are
checked (PostHog drops excluded attempts); unordered funnels assign an event matching two
different matchers to the first one; optional steps are only supported in ordered funnels.

Algorithm
---------
One partitioned window pass over the matching events numbers each user's events
(``pos``) and keeps running counts ``c_k`` of step-``k`` events. The earliest step-``k``
event after row ``r`` is then the step-``k`` event whose ordinal is ``c_k(r) + 1``, so
every attempt's greedy chain is ``n - 1`` equi-joins on ``(user, c_k)``; no self-join on
time ranges and no global sort are needed. Strict funnels use ``LEAD`` over the same
window, unordered funnels a numeric ``RANGE`` window of the window length. The best
attempt per user is picked with ``ROW_NUMBER``. Only the per-user result is fetched.

SQL portability
---------------
The queries use plain SQL: ``CASE``, ``ROW_NUMBER``/``MIN``/``SUM``/``LEAD`` window
functions (with ``ROWS`` and numeric ``RANGE`` frames), ``LEFT JOIN`` and ``EXISTS``.
The DuckDB-specific pieces are ``epoch_us(ts)`` (integer microseconds since the epoch;
``EXTRACT(EPOCH FROM ts) * 1000000`` elsewhere), ``TRY_CAST`` in validation and the
``read_parquet``/``read_csv_auto`` table functions. Only DuckDB was tried; no other engine
(and no SQLGlot transpilation) has been tested.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import duckdb
import numpy as np
import pandas as pd

from funnel_models.errors import FunnelDataError

NONE_LABEL = "(none)"

__all__ = ["Step", "funnel", "parse_duration", "ORDERS", "ATTRIBUTIONS"]

#: Accepted values of ``order``.
ORDERS = ("ordered", "strict", "unordered")
#: Accepted values of ``attribution`` (plus ``"step:N"``).
ATTRIBUTIONS = ("first_touch", "last_touch", "all", "step:N")

EventsInput = Union[pd.DataFrame, str, Path, tuple]


@dataclass(frozen=True)
class Step:
    """One funnel step: an event name plus optional property filters.

    Parameters
    ----------
    event : str
        Event name, e.g. ``"pageview"``.
    where : dict, optional
        Property filters; a scalar means equality, a list/tuple/set means ``IN``, ``None``
        means the property is missing. Example: ``{"page": "/pricing"}``.
    name : str, optional
        Display name and stage code; defaults to the event name.

    Examples
    --------
    >>> Step("pageview", where={"page": "/pricing"}, name="Pricing").label
    'Pricing'
    """

    event: str
    where: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def label(self) -> str:
        """The step's display name."""
        return self.name if self.name else self.event

    def key(self) -> tuple:
        """Hashable identity of the matcher (event + filters), ignoring the name."""
        items = []
        for k, v in sorted(self.where.items()):
            if isinstance(v, (list, tuple, set, frozenset)):
                v = tuple(sorted(map(repr, v)))
            items.append((k, repr(v) if not isinstance(v, tuple) else v))
        return (self.event, tuple(items))


# ---------------------------------------------------------------------------- parsing
_UNITS = {
    "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
}
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(value: str | timedelta | pd.Timedelta, *, what: str = "window") -> timedelta:
    """Parse ``"14d"``, ``"1h"``, ``"5min"``, ``"30s"``, ``"2w"`` or a timedelta.

    ``"m"`` means minutes. Months are not accepted (their length varies): use days.

    Raises
    ------
    FunnelDataError
        If the value cannot be parsed or is not positive.
    """
    if isinstance(value, pd.Timedelta):
        value = value.to_pytimedelta()
    if isinstance(value, timedelta):
        td = value
    elif isinstance(value, str):
        m = _DUR.match(value)
        if not m or m.group(2).lower() not in _UNITS:
            raise FunnelDataError(
                f"{what}={value!r} is not a duration: use a number and a unit such as "
                f"'14d', '1h', '5min', '30s' or '2w' (units: {sorted(set(_UNITS))}), or a "
                "datetime.timedelta.")
        td = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise FunnelDataError(f"{what} must be a duration string like '14d' or a timedelta, "
                              f"got {type(value).__name__} {value!r}.")
    if td <= timedelta(0):
        raise FunnelDataError(f"{what}={value!r} must be positive, e.g. '14d'.")
    return td


def _as_step(s: Any, i: int) -> Step:
    if isinstance(s, Step):
        step = s
    elif isinstance(s, str):
        step = Step(event=s)
    elif isinstance(s, Mapping):
        unknown = set(s) - {"event", "where", "name"}
        if "event" not in s or unknown:
            raise FunnelDataError(
                f"steps[{i}]={s!r}: a step dict needs 'event' and may have 'where' and "
                f"'name' (unknown keys: {sorted(unknown)}). Example: "
                "{'event': 'pageview', 'where': {'page': '/pricing'}, 'name': 'Pricing'}.")
        step = Step(event=s["event"], where=dict(s.get("where") or {}), name=s.get("name"))
    else:
        raise FunnelDataError(f"steps[{i}]={s!r}: a step must be an event name, a Step or a "
                              "dict with 'event' (and optional 'where', 'name').")
    if not isinstance(step.event, str) or not step.event:
        raise FunnelDataError(f"steps[{i}]: the event name must be a non-empty string, "
                              f"got {step.event!r}.")
    if not isinstance(step.where, Mapping):
        raise FunnelDataError(f"steps[{i}].where must be a dict of property filters, "
                              f"got {step.where!r}.")
    return step


def _qi(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _lit(v: Any) -> str:
    """Render a Python scalar as an SQL literal."""
    if v is None:
        return "NULL"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise FunnelDataError(f"filter value {v!r} is not a finite number.")
        return repr(float(v))
    if isinstance(v, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(v)
        if ts.tz is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return f"TIMESTAMP '{ts.isoformat(sep=' ')}'"
    return "'" + str(v).replace("'", "''") + "'"


def _cond(col: str, v: Any) -> str:
    c = _qi(col)
    if v is None:
        return f"{c} IS NULL"
    if isinstance(v, (list, tuple, set, frozenset)):
        vals = list(v)
        if not vals:
            return "FALSE"
        return f"{c} IN ({', '.join(_lit(x) for x in vals)})"
    return f"{c} = {_lit(v)}"


def _matcher_sql(step: Step, event_col: str) -> str:
    parts = [_cond(event_col, step.event)] + [_cond(k, v) for k, v in step.where.items()]
    return "(" + " AND ".join(parts) + ")"


# ---------------------------------------------------------------------------- sources
class _Source:
    """A DuckDB connection plus the FROM clause of the event log."""

    def __init__(self, events: Any, con: duckdb.DuckDBPyConnection | None):
        self.owned = False
        if isinstance(events, tuple):
            if len(events) != 2 or not isinstance(events[0], duckdb.DuckDBPyConnection):
                raise FunnelDataError("events=(con, table): pass a duckdb connection and a "
                                      f"table name, got a tuple of {len(events)} items.")
            con, events = events
            if not isinstance(events, str):
                raise FunnelDataError(f"events=(con, table): the table name must be a string, "
                                      f"got {events!r}.")
            self.con = con
            self.from_sql = self._table_sql(events)
            self.label = f"table {events!r}"
            return
        if isinstance(events, pd.DataFrame):
            self.con = con or duckdb.connect()
            self.owned = con is None
            self.view = f"__fm_events_{uuid.uuid4().hex[:10]}"
            self.con.register(self.view, events)
            self.from_sql = _qi(self.view)
            self.label = "the events DataFrame"
            return
        if isinstance(events, (str, Path)) and con is not None and not _looks_like_path(events):
            self.con = con
            self.from_sql = self._table_sql(str(events))
            self.label = f"table {str(events)!r}"
            return
        if isinstance(events, (str, Path)):
            p = str(events)
            self.con = con or duckdb.connect()
            self.owned = con is None
            low = p.lower()
            if low.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
                if not Path(p).exists():
                    raise FunnelDataError(f"{p}: CSV file not found.")
                self.from_sql = f"read_csv_auto({_lit(p)})"
            else:
                if "*" not in p and not Path(p).exists():
                    raise FunnelDataError(f"{p}: file not found. Pass a Parquet/CSV path, a "
                                          "DataFrame or (con, table).")
                if Path(p).is_dir():
                    p = str(Path(p) / "**" / "*.parquet")
                self.from_sql = f"read_parquet({_lit(p)})"
            self.label = p
            return
        raise FunnelDataError(f"events must be a DataFrame, a Parquet/CSV path or (con, table); "
                              f"got {type(events).__name__}.")

    def _table_sql(self, name: str) -> str:
        return ".".join(_qi(p) for p in name.split("."))

    def columns(self) -> dict[str, str]:
        try:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.from_sql}").fetchall()
        except duckdb.Error as exc:
            raise FunnelDataError(f"{self.label}: cannot read the events: {exc}") from exc
        return {r[0]: str(r[1]) for r in rows}


def _looks_like_path(x: Any) -> bool:
    s = str(x)
    return isinstance(x, Path) or "/" in s or "\\" in s or s.lower().endswith(
        (".parquet", ".pq", ".csv", ".csv.gz", ".tsv"))


# ---------------------------------------------------------------------------- main
def funnel(
    events: EventsInput,
    steps: Sequence[str | Step | Mapping[str, Any]],
    *,
    window: str | timedelta = "14d",
    order: str = "ordered",
    breakdown: str | None = None,
    attribution: str = "first_touch",
    exclusions: Sequence[tuple[Any, int, int]] = (),
    optional_steps: Sequence[int] = (),
    filters: Mapping[str, Any] | None = None,
    start: Any = None,
    end: Any = None,
    properties: Sequence[str] = (),
    user_col: str = "user_id",
    time_col: str = "timestamp",
    event_col: str = "event",
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Compute a conversion funnel from an event log in DuckDB.

    Parameters
    ----------
    events : DataFrame, path or (con, table)
        The event log (see the module docstring). A table name with ``con=`` also works.
    steps : list of str, Step or dict
        Funnel steps in order (at least one).
    window : str or timedelta, default "14d"
        Conversion window, timed from the step-0 event of an attempt (inclusive limit).
    order : {"ordered", "strict", "unordered"}
        Step ordering semantics.
    breakdown : str, optional
        Property column to break the funnel down by.
    attribution : {"first_touch", "last_touch", "step:N", "all"}
        Which event's property value a user is attributed to.
    exclusions : list of (event, from_step, to_step)
        Remove users doing ``event`` between the 0-based steps. ``event`` may be a name,
        a :class:`Step` or a dict.
    optional_steps : list of int
        0-based indices of optional steps (ordered funnels only; not step 0).
    filters : dict, optional
        Property filters applied to every event: ``{"region": "EU", "campaign": [...]}``.
    start, end : datetime-like, optional
        Time frame; ``start`` inclusive, ``end`` exclusive.
    properties : list of str
        Extra property columns carried per user (taken from the step-0 event), e.g. for
        :meth:`FunnelResult.to_stage_history`.
    user_col, time_col, event_col : str
        Column names of the log.
    con : duckdb connection, optional
        Connection holding the table named by ``events``; also used for DataFrames/paths.

    Returns
    -------
    FunnelResult

    Raises
    ------
    FunnelDataError
        For missing columns, unparseable timestamps, bad steps, window, order,
        attribution, exclusions or optional steps.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["visit", "buy", "visit"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02",
    ...                                                 "2024-01-01"])})
    >>> funnel(ev, ["visit", "buy"], window="7d").counts.tolist()
    [2, 1]
    """
    # ---------------------------------------------------------------- arguments
    if isinstance(steps, (str, Step, Mapping)):
        steps = [steps]
    steps = list(steps or [])
    if not steps:
        raise FunnelDataError("steps is empty: pass at least one step, e.g. "
                              "steps=['landing_view', 'signup', 'purchase'].")
    step_objs = [_as_step(s, i) for i, s in enumerate(steps)]
    n = len(step_objs)
    names: list[str] = []
    for s in step_objs:
        base = s.label
        name, j = base, 2
        while name in names:
            name, j = f"{base} #{j}", j + 1
        names.append(name)
    if order not in ORDERS:
        raise FunnelDataError(f"order={order!r} is unknown: use one of {list(ORDERS)}.")
    win = parse_duration(window, what="window")
    w_us = win // timedelta(microseconds=1)
    if w_us <= 0:
        raise FunnelDataError(f"window={window!r} is shorter than a microsecond; use e.g. '1h'.")

    if not isinstance(attribution, str):
        raise FunnelDataError(f"attribution={attribution!r} must be a string.")
    attr_step: int | None = None
    if attribution.startswith("step:"):
        try:
            attr_step = int(attribution.split(":", 1)[1])
        except ValueError:
            attr_step = -1
        if not 0 <= attr_step < n:
            raise FunnelDataError(f"attribution={attribution!r}: N must be a 0-based step "
                                  f"index between 0 and {n - 1}, e.g. 'step:1'.")
    elif attribution not in ("first_touch", "last_touch", "all"):
        raise FunnelDataError(f"attribution={attribution!r} is unknown: use 'first_touch', "
                              "'last_touch', 'all' or 'step:N' (N a 0-based step index).")
    if breakdown is not None and not isinstance(breakdown, str):
        raise FunnelDataError(f"breakdown must be one column name, got {breakdown!r}.")
    by_all = breakdown is not None and attribution == "all"

    optional = sorted(set(int(i) for i in optional_steps))
    for i in optional:
        if not 0 <= i < n:
            raise FunnelDataError(f"optional_steps: index {i} is outside 0..{n - 1} (0-based).")
    if 0 in optional:
        raise FunnelDataError("optional_steps: step 0 cannot be optional; it starts the funnel.")
    if optional and order != "ordered":
        raise FunnelDataError(f"optional_steps need order='ordered' (got order={order!r}).")

    excl: list[tuple[Step, int, int]] = []
    for j, ex in enumerate(exclusions or ()):
        if not isinstance(ex, (tuple, list)) or len(ex) != 3:
            raise FunnelDataError(f"exclusions[{j}]={ex!r}: use (event, from_step, to_step) "
                                  "with 0-based step indices, e.g. ('refund', 0, 2).")
        ev_, a, b = ex
        exs = _as_step(ev_, j)
        if not (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer))
                and 0 <= a < b < n):
            raise FunnelDataError(f"exclusions[{j}]={ex!r}: need 0 <= from_step < to_step <= "
                                  f"{n - 1} (0-based step indices).")
        if a in optional or b in optional:
            raise FunnelDataError(f"exclusions[{j}]: from/to steps must be required steps.")
        excl.append((exs, int(a), int(b)))
    properties = [p for p in (properties or ()) if p != breakdown]

    # ---------------------------------------------------------------- source checks
    src = _Source(events, con)
    cols = src.columns()
    needed = {"user_col": user_col, "time_col": time_col, "event_col": event_col}
    missing = [f"{arg}={c!r}" for arg, c in needed.items() if c not in cols]
    prop_cols = set(filters or {}) | set(properties)
    if breakdown:
        prop_cols.add(breakdown)
    for s in step_objs + [e[0] for e in excl]:
        prop_cols |= set(s.where)
    missing += [repr(c) for c in sorted(prop_cols) if c not in cols]
    if missing:
        raise FunnelDataError(f"{src.label}: missing column(s) {', '.join(missing)}; the "
                              f"columns are {list(cols)}. Rename them or pass user_col=, "
                              "time_col=, event_col= (and check breakdown/filters/where).")
    _check_times(src, time_col, cols[time_col])
    _check_not_null(src, user_col, "user ids")
    for nm in names:
        if nm in {"user_id", "breakdown", *properties}:
            raise FunnelDataError(f"step name {nm!r} clashes with a result column; give the "
                                  "step another name, e.g. Step(event, name='...').")

    # ---------------------------------------------------------------- SQL build
    tmp = f"__fm_{uuid.uuid4().hex[:10]}"
    T = {k: f"{tmp}_{k}" for k in ("ev", "seq", "att", "best", "res")}
    U, E = _qi(user_col), _qi(event_col)
    TS = (f"timezone('UTC', {_qi(time_col)})" if "TIME ZONE" in cols[time_col]
          else _qi(time_col))
    where = []
    for k, v in (filters or {}).items():
        where.append(_cond(k, v))
    if start is not None:
        where.append(f"CAST({TS} AS TIMESTAMP) >= {_lit(pd.Timestamp(start))}")
    if end is not None:
        where.append(f"CAST({TS} AS TIMESTAMP) < {_lit(pd.Timestamp(end))}")
    matchers = [_matcher_sql(s, event_col) for s in step_objs]
    xmatch = [_matcher_sql(e[0], event_col) for e in excl]
    if order != "strict":
        where.append("(" + " OR ".join(matchers + xmatch) + ")")
    if by_all:
        where.append(f"{_qi(breakdown)} IS NOT NULL")
    mask = " + ".join([f"CASE WHEN {m} THEN {2 ** i} ELSE 0 END" for i, m in
                       enumerate(matchers + xmatch)])
    minstep = "CASE " + " ".join(f"WHEN {m} THEN {i}" for i, m in enumerate(matchers)) + f" ELSE {n} END"
    sel = [f"CAST({U} AS VARCHAR) AS user_id", f"epoch_us(CAST({TS} AS TIMESTAMP)) AS us",
           f"{minstep} AS minstep", f"{mask} AS mask"]
    sel += [f"CASE WHEN {m} THEN 1 ELSE 0 END AS m{i}" for i, m in enumerate(matchers)]
    sel += [f"CASE WHEN {m} THEN 1 ELSE 0 END AS x{j}" for j, m in enumerate(xmatch)]
    sel.append(f"CAST({_qi(breakdown)} AS VARCHAR) AS bd" if breakdown else "CAST(NULL AS VARCHAR) AS bd")
    sel += [f"CAST({_qi(p)} AS VARCHAR) AS p{i}" for i, p in enumerate(properties)]
    key = ["user_id", "bd"] if by_all else ["user_id"]
    part = ", ".join(key)
    groups: list[int] = []
    if order == "unordered":
        gkeys: list[tuple] = []
        for s in step_objs:
            if s.key() not in gkeys:
                gkeys.append(s.key())
            groups.append(gkeys.index(s.key()))
        cap = [groups.count(g) for g in range(len(gkeys))]
        first_of = [groups.index(g) for g in range(len(gkeys))]
        grp = "CASE " + " ".join(f"WHEN m{first_of[g]} = 1 THEN {g}" for g in range(len(gkeys))) + " ELSE -1 END"
        sel_grp = f", {grp} AS grp"
    else:
        sel_grp = ""

    con_ = src.con
    created: list[str] = []

    def run(sql: str) -> None:
        try:
            con_.execute(sql)
        except duckdb.Error as exc:
            raise FunnelDataError(f"{src.label}: the funnel query failed: {exc}") from exc

    def create(name: str, sql: str) -> None:
        created.append(name)
        run(f"CREATE OR REPLACE TEMP TABLE {_qi(name)} AS {sql}")

    wh = (" WHERE " + " AND ".join(where)) if where else ""
    ev_sql = f"(SELECT {', '.join(sel)} FROM {src.from_sql}{wh})"
    try:
        pio = con_.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    except duckdb.Error:  # pragma: no cover
        pio = None
    try:
        if pio is not None:
            con_.execute("SET preserve_insertion_order = false")
        req = [i for i in range(n) if i not in optional]
        # One partitioned window pass: position within the user, plus running counts c_k of
        # step-k events so far. The next step-k event after row r is the step-k event with
        # ordinal c_k(r) + 1, so the attempt chain is a series of equi-joins.
        run_cols = ""
        if order == "ordered":
            run_cols = "".join(f", CAST(SUM(m{k}) OVER w AS INTEGER) AS c{k}" for k in range(1, n))
        elif order == "strict":
            oks = [f"(CASE WHEN LEAD(m{k}, {k}) OVER w = 1 AND LEAD(us, {k}) OVER w <= us + {w_us} "
                   f"THEN 1 ELSE 0 END)" for k in range(1, n)]
            prods = [" * ".join(oks[:k]) for k in range(1, n)]
            run_cols = "".join(f", CASE WHEN m0 = 1 THEN {prods[k - 1]} END AS ok{k}" for k in range(1, n))
            run_cols += "".join(f", CASE WHEN m0 = 1 THEN LEAD(us, {k}) OVER w END AS lu{k}, "
                                f"CASE WHEN m0 = 1 THEN LEAD(bd, {k}) OVER w END AS lb{k}"
                                for k in range(1, n))
        tie = ", bd" if breakdown else ""
        create(T["seq"],
               f"SELECT e.*, ROW_NUMBER() OVER w AS pos{run_cols}{sel_grp} FROM {ev_sql} e "
               f"WINDOW w AS (PARTITION BY {part} ORDER BY us, minstep, mask{tie} "
               "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
        seq = _qi(T["seq"])
        span = con_.execute(f"SELECT MIN(us), MAX(us), COUNT(*) FROM {seq}").fetchone()
        pcols = "".join(f", s0.p{i}" for i in range(len(properties)))
        if order == "ordered":
            def same(k: int) -> str:
                return " AND ".join(f"s{k}.{c} = s0.{c}" for c in key)

            joins, outs = [], ["s0.user_id", "s0.bd AS bd_key", "s0.us AS u0"]
            for k in range(n):
                if k == 0:
                    pass
                elif k in optional:
                    # previous filled step: nearest earlier optional ones, then the required one
                    prev_req = max(r for r in req if r < k)
                    prevs = [f"s{o}.c{k}" for o in range(k - 1, prev_req, -1)] + [f"s{prev_req}.c{k}"]
                    nxt = [r for r in req if r > k]
                    bound = f" AND (s{nxt[0]}.pos IS NULL OR s{k}.pos < s{nxt[0]}.pos)" if nxt else ""
                    joins.append((k, f"LEFT JOIN {seq} s{k} ON {same(k)} AND s{k}.m{k} = 1 AND "
                                     f"s{k}.c{k} = COALESCE({', '.join(prevs)}) + 1 "
                                     f"AND s{k}.us <= s0.us + {w_us}{bound}"))
                else:
                    prev_req = max(r for r in req if r < k)
                    joins.append((k, f"LEFT JOIN {seq} s{k} ON {same(k)} AND s{k}.m{k} = 1 AND "
                                     f"s{k}.c{k} = s{prev_req}.c{k} + 1 AND s{k}.us <= s0.us + {w_us}"))
                outs += [f"s{k}.pos AS g{k}", f"s{k}.us AS t{k}", f"s{k}.bd AS b{k}"]
            # required joins first (optional joins reference the next required alias)
            joins.sort(key=lambda kv: (kv[0] in optional, kv[0]))
            level = " + ".join(f"CASE WHEN s{k}.pos IS NULL THEN 0 ELSE 1 END" for k in req)
            att_sql = (f"SELECT {', '.join(outs)}{pcols}, {level} AS lvl FROM {seq} s0 "
                       + " ".join(j for _, j in joins) + " WHERE s0.m0 = 1")
        elif order == "strict":
            outs = ["user_id", "bd AS bd_key", "us AS u0", "pos AS g0", "us AS t0", "bd AS b0"]
            for k in range(1, n):
                outs += [f"CASE WHEN ok{k} = 1 THEN pos + {k} END AS g{k}",
                         f"CASE WHEN ok{k} = 1 THEN lu{k} END AS t{k}",
                         f"CASE WHEN ok{k} = 1 THEN lb{k} END AS b{k}"]
            lvl = "1" + "".join(f" + ok{k}" for k in range(1, n))
            pc = "".join(f", p{i}" for i in range(len(properties)))
            att_sql = f"SELECT {', '.join(outs)}{pc}, {lvl} AS lvl FROM {seq} WHERE m0 = 1"
        else:  # unordered
            cnts = [f"SUM(CASE WHEN grp = {g} THEN 1 ELSE 0 END) OVER w AS c{g}" for g in range(len(cap))]
            lvl = " + ".join(f"LEAST(c{g}, {cap[g]})" for g in range(len(cap)))
            create(f"{tmp}_win", f"SELECT user_id, bd, us, pos, grp, {', '.join(cnts)} FROM {seq} "
                                 f"WHERE grp >= 0 WINDOW w AS (PARTITION BY {part} ORDER BY us "
                                 f"RANGE BETWEEN CURRENT ROW AND {w_us} FOLLOWING)")
            bw = _qi(f"{tmp}_win")
            create(f"{tmp}_bw", f"SELECT user_id, bd AS bd_key, us AS u0, lvl FROM (SELECT *, {lvl} AS lvl, "
                                f"ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {lvl} DESC, us, pos) AS rk "
                                f"FROM {bw}) q WHERE rk = 1")
            bwt = _qi(f"{tmp}_bw")
            keyj = " AND ".join(f"s.{c} = b.{'bd_key' if c == 'bd' else c}" for c in key)
            fills = (f"SELECT * FROM (SELECT f.*, ROW_NUMBER() OVER (PARTITION BY {', '.join('f.' + c for c in ['user_id', 'bd_key'])} "
                     f"ORDER BY f.pos) - 1 AS k FROM (SELECT s.user_id, b.bd_key, s.pos, s.us, s.bd, "
                     f"{', '.join('s.p' + str(i) for i in range(len(properties))) + ', ' if properties else ''}"
                     f"ROW_NUMBER() OVER (PARTITION BY s.user_id, b.bd_key, s.grp ORDER BY s.pos) AS r, "
                     f"CASE {' '.join(f'WHEN s.grp = {g} THEN {cap[g]}' for g in range(len(cap)))} END AS capg "
                     f"FROM {seq} s JOIN {bwt} b ON {keyj} AND s.us >= b.u0 AND s.us <= b.u0 + {w_us} "
                     f"WHERE s.grp >= 0) f WHERE f.r <= f.capg) q")
            create(f"{tmp}_fill", fills)
            fl = _qi(f"{tmp}_fill")
            outs = ["b.user_id", "b.bd_key", "b.u0", "b.lvl"]
            for k in range(n):
                outs += [f"MAX(CASE WHEN f.k = {k} THEN f.{c} END) AS {a}{k}"
                         for c, a in (("pos", "g"), ("us", "t"), ("bd", "b"))]
            outs += [f"MAX(CASE WHEN f.k = 0 THEN f.p{i} END) AS p{i}" for i in range(len(properties))]
            att_sql = (f"SELECT {', '.join(outs)} FROM {bwt} b JOIN {fl} f ON f.user_id = b.user_id "
                       f"AND f.bd_key IS NOT DISTINCT FROM b.bd_key GROUP BY b.user_id, b.bd_key, b.u0, b.lvl")

        # best attempt per user (and value with attribution='all')
        if order == "unordered":
            best_sql = att_sql
        else:
            best_sql = (f"SELECT * FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY user_id"
                        f"{', bd_key' if by_all else ''} ORDER BY lvl DESC, u0, g0) AS rk "
                        f"FROM ({att_sql}) a) q WHERE rk = 1")
        ex_conds = []
        for j, (_, a, b) in enumerate(excl):
            same = " AND x.bd = t.bd_key" if by_all else ""
            ex_conds.append(
                f"(t.g{a} IS NOT NULL AND EXISTS (SELECT 1 FROM {seq} x WHERE x.x{j} = 1 AND "
                f"x.user_id = t.user_id{same} AND x.pos > t.g{a} AND (t.g{b} IS NULL OR x.pos < t.g{b}) "
                f"AND x.us <= t.u0 + {w_us}))")
        flag = ("CASE WHEN " + " OR ".join(ex_conds) + " THEN 1 ELSE 0 END") if ex_conds else "0"
        create(T["best"], f"SELECT t.*, {flag} AS excluded FROM ({best_sql}) t")
        n_excluded = 0
        if ex_conds:
            n_excluded = con_.execute(f"SELECT COUNT(*) FROM {_qi(T['best'])} WHERE excluded = 1"
                                      ).fetchone()[0]

        # breakdown value per user
        if breakdown is None:
            bexpr = "CAST(NULL AS VARCHAR)"
        elif by_all:
            bexpr = "bd_key"
        elif attribution == "first_touch":
            bexpr = "b0"
        elif attribution == "last_touch":
            bexpr = "CASE " + " ".join(f"WHEN t{k} IS NOT NULL THEN b{k}" for k in range(n - 1, -1, -1)) + " END"
        else:
            bexpr = f"b{attr_step}"
        outs = ["user_id", f"COALESCE({bexpr}, {_lit(NONE_LABEL)}) AS breakdown"]
        outs += [f"t{k}" for k in range(n)]
        outs += [f"p{i} AS {_qi(p)}" for i, p in enumerate(properties)]
        users = con_.execute(f"SELECT {', '.join(outs)} FROM {_qi(T['best'])} "
                             "WHERE excluded = 0").df()
    finally:
        if pio is not None:
            con_.execute(f"SET preserve_insertion_order = {'true' if pio else 'false'}")
        for t in created:
            try:
                con_.execute(f"DROP TABLE IF EXISTS {_qi(t)}")
            except duckdb.Error:  # pragma: no cover - best effort cleanup
                pass

    for k in range(n):
        users[f"t{k}"] = _us_to_datetime(users[f"t{k}"])
    users = users.rename(columns={f"t{k}": names[k] for k in range(n)})
    users["user_id"] = users["user_id"].astype(str)
    users["breakdown"] = users["breakdown"].astype(str)
    for p in properties:
        users[p] = users[p].astype("string").fillna(NONE_LABEL).astype(str)

    def skipped() -> pd.DataFrame:
        # open-funnel statistics: did the user do step k at all (in the time frame)?
        did = ", ".join(f"MAX(m{k}) AS d{k}" for k in range(n))
        agg = [f"SUM(d{k}) AS did{k}" for k in range(n)]
        agg += [f"SUM(CASE WHEN d{k} = 1 AND d{k - 1} = 0 THEN 1 ELSE 0 END) AS sp{k}" for k in range(1, n)]
        agg += [f"SUM(CASE WHEN d{k} = 1 AND d0 = 0 THEN 1 ELSE 0 END) AS sf{k}" for k in range(1, n)]
        row = src.con.execute(f"SELECT {', '.join(agg)} FROM (SELECT user_id, {did} FROM "
                              f"{ev_sql} e GROUP BY user_id) q").fetchone()
        vals = [0 if v is None else int(v) for v in row]
        return pd.DataFrame({"step": names, "users_did_step": vals[:n],
                             "skipped_previous": [0] + vals[n:2 * n - 1],
                             "skipped_first": [0] + vals[2 * n - 1:]})

    def journey(user: Any) -> pd.DataFrame:
        cols_ = [c for c in dict.fromkeys([user_col, time_col, event_col] + sorted(prop_cols)) if c]
        q = (f"SELECT {', '.join(_qi(c) for c in cols_)} FROM {src.from_sql} WHERE "
             f"CAST({U} AS VARCHAR) = {_lit(str(user))} ORDER BY CAST({TS} AS TIMESTAMP)")
        out = src.con.execute(q).df()
        return out.rename(columns={user_col: "user_id", time_col: "timestamp", event_col: "event"})

    return users


def _us_to_ts(v: Any) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(int(v), unit="us").as_unit("ns")


def _us_to_datetime(col: pd.Series) -> pd.Series:
    """Epoch microseconds (int, or float with NaN for missing) to datetime64[ns]."""
    v = pd.to_numeric(col).to_numpy(dtype="float64", na_value=np.nan)
    ok = ~np.isnan(v)
    out = np.full(len(v), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = (v[ok].astype(np.int64) * 1000).astype("datetime64[ns]")
    return pd.Series(out, index=col.index)


def _check_times(src: _Source, col: str, typ: str) -> None:
    c = _qi(col)
    if typ.startswith("TIMESTAMP") or typ == "DATE":
        if not _any(src, f"{c} IS NULL"):
            return
        bad_rows = src.con.execute(
            f"SELECT rn FROM (SELECT ROW_NUMBER() OVER () - 1 AS rn, {c} AS v FROM {src.from_sql}) q "
            "WHERE v IS NULL LIMIT 3").fetchall()
        if bad_rows:
            raise FunnelDataError(f"{src.label}: column {col!r} has missing timestamps (row(s) "
                                  f"{[r[0] for r in bad_rows]}); drop or fill those rows.")
        return
    if typ != "VARCHAR":
        raise FunnelDataError(f"{src.label}: column {col!r} has type {typ}, not a timestamp; "
                              "convert it first, e.g. pd.to_datetime(df[col], unit='s') for "
                              "epoch seconds.")
    if not _any(src, f"{c} IS NULL OR TRY_CAST({c} AS TIMESTAMP) IS NULL"):
        return
    bad = src.con.execute(
        f"SELECT rn, v FROM (SELECT ROW_NUMBER() OVER () - 1 AS rn, {c} AS v FROM {src.from_sql}) q "
        "WHERE v IS NULL OR TRY_CAST(v AS TIMESTAMP) IS NULL LIMIT 3").fetchall()
    if bad:
        shown = ", ".join(f"row {r} ({v!r})" for r, v in bad)
        raise FunnelDataError(f"{src.label}: column {col!r} has unparseable or missing "
                              f"timestamps at {shown}; use ISO format like "
                              "'2024-01-31 12:00:00' or pass parsed datetimes.")


def _any(src: _Source, cond: str) -> bool:
    return src.con.execute(f"SELECT EXISTS (SELECT 1 FROM {src.from_sql} WHERE {cond})").fetchone()[0]


def _check_not_null(src: _Source, col: str, what: str) -> None:
    if not _any(src, f"{_qi(col)} IS NULL"):
        return
    bad = src.con.execute(
        f"SELECT rn FROM (SELECT ROW_NUMBER() OVER () - 1 AS rn, {_qi(col)} AS v FROM "
        f"{src.from_sql}) q WHERE v IS NULL LIMIT 3").fetchall()
    if bad:
        raise FunnelDataError(f"{src.label}: column {col!r} has missing {what} at row(s) "
                              f"{[r[0] for r in bad]}; drop those rows first.")
