"""Event-log funnels with PostHog semantics, on any engine Ibis reaches.

:func:`funnel` turns a raw event log (one row per event: user, timestamp, event name,
properties) into a :class:`~funnel_models.events.result.FunnelResult`. The log is never
loaded into pandas: it is queried where it lives (embedded DuckDB for DataFrames and files,
or the engine of the Ibis table / connection given: Spark, ClickHouse, BigQuery...). Only
the per-user result comes back.

Semantics (PostHog's funnels)
-----------------------------
Events of one user are put in a total order: timestamp, then the lowest step index the
event matches, then the set of matched steps/exclusions, then the breakdown value. So
simultaneous events resolve in favour of funnel progress, as PostHog resolves them (it
replays a group of simultaneous events sorted by step): ten steps logged at one timestamp
reach step 10. An event fills at most one step of an attempt.

* ``order="ordered"``: an *attempt* starts at every event matching step 0; each further step
  is filled by the earliest matching event after the event filling the previous step;
  other events may happen in between.
* ``order="strict"``: the step events must be consecutive in the user's full event stream;
  any other event in between ends the attempt. Other events at the same timestamp as a step
  event are ignored (PostHog ignores them inside a group of simultaneous events).
* ``order="unordered"``: an attempt is any window ``[t, t + window]`` starting at a step
  event; its level is the number of steps distinct events inside it can fill. Step ``k``
  means "completed ``k + 1`` of the steps". An event matching two different matchers fills
  the first.
* The conversion window is timed from the attempt's step-0 event; an event exactly at the
  limit counts (``t <= t0 + window``).
* ``optional_steps`` (ordered and strict funnels): an optional step counts when its event
  comes after the previous filled step and before the next required step's event; required
  steps chain past optional ones. Step 0 cannot be optional.
* ``exclusions=[(event, a, b)]`` remove the *attempt*, not the user: an attempt is dropped
  when the excluded event happens after the event filling step ``a`` and before the event
  filling step ``b`` (or, when ``b`` was not reached, within the conversion window).
  Exclusion events at the same timestamp as a step event are ignored. Unordered funnels
  take only exclusions over the whole funnel.
* Each user counts with their best remaining attempt: the furthest step; among attempts
  reaching it, the first to get there; then the latest start. Users whose every attempt was
  excluded are not counted (``FunnelResult.n_excluded``). Unordered funnels keep the window
  with the highest level, then the earliest.
* ``breakdown`` with ``attribution``: ``"first_touch"`` takes the value from the event
  filling step 0 of the counted attempt, ``"last_touch"`` from the event filling the
  furthest step, ``"step:N"`` from the event filling step ``N`` (``"(none)"`` when not
  reached), ``"all"`` runs the funnel separately for every value using only events carrying
  it. Missing values show as ``"(none)"``; ``breakdown_limit`` keeps the top values (by
  users at the last step, then the previous...) and reports the rest as ``"Other"``.
* Filters (``start``/``end``/``filters``) apply to every event first, including the "other
  events" of strict funnels. ``start`` is inclusive, ``end`` exclusive.

What PostHog does and this does not: person merging, sessions, cohorts and actions.
Where PostHog's newer UDF engine shadows an older attempt by a newer one at the same step,
a user whose newer attempt was excluded but whose older one was clean is dropped there and
counted here, as PostHog's SQL funnels did. See :mod:`funnel_models.events.builders` for
the algorithm, and :mod:`funnel_models.events.scan` for the tuned DuckDB path of ordered
funnels (same results, 2.5x faster on 10M events).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping, Sequence

import pandas as pd

from ..errors import FunnelDataError
from .executor import check_source, execute
from .query import Step, build_query
from .result import FunnelResult
from .source import open_source

__all__ = ["funnel", "compare_periods"]


def funnel(
    events: Any,
    steps: Sequence[str | Step | Mapping[str, Any]],
    *,
    window: str | timedelta = "14d",
    order: str = "ordered",
    breakdown: str | None = None,
    attribution: str = "first_touch",
    breakdown_limit: int | None = None,
    exclusions: Sequence[tuple[Any, int, int]] = (),
    optional_steps: Sequence[int] = (),
    filters: Mapping[str, Any] | None = None,
    start: Any = None,
    end: Any = None,
    properties: Sequence[str] = (),
    user_col: str = "user_id",
    time_col: str = "timestamp",
    event_col: str = "event",
    con: Any = None,
) -> FunnelResult:
    """Compute a conversion funnel from an event log where the log lives.

    Parameters
    ----------
    events : DataFrame, path, Ibis table or (connection, table)
        The event log: a DataFrame, a Parquet/CSV path, an Ibis table on any backend, or
        ``(where, "table")`` with ``where`` a DuckDB connection, SparkSession, Ibis
        backend, ``"duckdb:///file.duckdb"``-style URL or Spark master URL (see
        :mod:`funnel_models.events.source`). A table name with ``con=`` also works.
    steps : list of str, Step or dict
        Funnel steps in order (at least one).
    window : str or timedelta, default "14d"
        Conversion window, timed from the step-0 event of an attempt (inclusive limit).
    order : {"ordered", "strict", "unordered"}
    breakdown, attribution, breakdown_limit : optional
        Property column to break down by; ``"first_touch"``, ``"last_touch"``,
        ``"step:N"`` or ``"all"``; how many values to keep (the rest is ``"Other"``).
    exclusions : list of (event, from_step, to_step)
        Drop attempts with ``event`` between the 0-based steps. ``event`` may be a name,
        a :class:`Step` or a dict.
    optional_steps : list of int
        0-based indices of optional steps (ordered and strict funnels; not step 0).
    filters, start, end : optional
        Property filters on every event (``{"region": "EU"}``); time frame (start inclusive).
    properties : list of str
        Extra property columns carried per user (from the step-0 event).
    user_col, time_col, event_col : str
        Column names of the log.
    con : duckdb connection, optional
        Connection holding the table named by ``events``.

    Returns
    -------
    FunnelResult

    Raises
    ------
    FunnelDataError
        For bad input or arguments (PostHog's validation rules included), with the fix.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["visit", "buy", "visit"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02",
    ...                                                 "2024-01-01"])})
    >>> funnel(ev, ["visit", "buy"], window="7d").counts.tolist()
    [2, 1]
    """
    q = build_query(steps, window=window, order=order, breakdown=breakdown,
                    attribution=attribution, breakdown_limit=breakdown_limit,
                    exclusions=exclusions, optional_steps=optional_steps, filters=filters,
                    start=start, end=end, properties=properties, user_col=user_col,
                    time_col=time_col, event_col=event_col)
    table, ref = open_source(events, con)
    check_source(table, q, ref)
    got = execute(table, q, ref)
    return FunnelResult(users=got.users, query=q, source=ref, data_start=got.data_start,
                        data_end=got.data_end, n_events=got.n_events, n_excluded=got.n_excluded)


def compare_periods(events: Any, steps: Sequence[Any], *, start: Any, end: Any,
                    **kwargs: Any) -> pd.DataFrame:
    """The funnel over ``[start, end)`` beside the previous period of the same length.

    Parameters
    ----------
    events, steps, **kwargs
        As for :func:`funnel` (not ``start``/``end``).
    start, end : datetime-like
        The current period.

    Returns
    -------
    DataFrame
        Per step: ``count`` and ``conversion_from_first`` for the ``current`` and
        ``previous`` period, and the change of each (``count_change``,
        ``conversion_change``, in rate points). Without breakdown only.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "event": ["v", "b", "v", "v"],
    ...                    "timestamp": pd.to_datetime(["2024-01-02", "2024-01-03",
    ...                                                 "2024-01-09", "2024-01-10"])})
    >>> t = compare_periods(ev, ["v", "b"], start="2024-01-08", end="2024-01-15", window="2d")
    >>> t["count_current"].tolist(), t["count_previous"].tolist()
    ([2, 0], [1, 1])
    """
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if kwargs.get("breakdown") is not None:
        raise FunnelDataError("compare_periods works on the whole funnel; drop breakdown= or "
                              "compare one value at a time with filters={column: value}.")
    if hi <= lo:
        raise FunnelDataError(f"compare_periods: end ({hi}) must be after start ({lo}).")
    cur = funnel(events, steps, start=lo, end=hi, **kwargs).conversion
    prev = funnel(events, steps, start=lo - (hi - lo), end=lo, **kwargs).conversion
    cols = ["step", "count", "conversion_from_first"]
    out = cur[cols].merge(prev[cols], on="step", suffixes=("_current", "_previous"), sort=False)
    out["count_change"] = out["count_current"] - out["count_previous"]
    out["conversion_change"] = (out["conversion_from_first_current"]
                                - out["conversion_from_first_previous"])
    return out
