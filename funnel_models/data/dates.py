"""Months and the cut-off rule: the one place that decides which rows a cut-off keeps.

The cut-off rule
----------------
A cut-off is a **day** C (any time of day given with it is dropped). A row belongs to the
data known at cut-off C iff its timestamp is **before C + 1 day**: everything dated on C,
up to 23:59:59.999..., is in; 00:00 on the next day is out. :func:`cutoff_end` gives that
exclusive bound and :func:`through_cutoff` applies it to a frame.

Months
------
A ``month`` value is midnight on the first day of a calendar month (``datetime64[ns]``);
:func:`month_start` floors dates to it. :func:`month_index` numbers months
(``year * 12 + month - 1``) so month arithmetic is integer arithmetic, and
:func:`from_month_index` goes back.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"t": pd.to_datetime(["2024-03-31 23:59:59.999", "2024-04-01 00:00:00.000"])})
>>> through_cutoff(df, "t", "2024-03-31")["t"].dt.strftime("%Y-%m-%d %H:%M").tolist()
['2024-03-31 23:59']
>>> month_start("2024-03-17")
Timestamp('2024-03-01 00:00:00')
>>> parse_month("2024-03")
Timestamp('2024-03-01 00:00:00')
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["month_start", "month_end", "add_months", "month_index", "from_month_index", "cutoff_day", "cutoff_end",
           "through_cutoff", "parse_month"]

DateLike = str | pd.Timestamp | _dt.date | np.datetime64


def month_start(values: pd.Series | pd.DatetimeIndex | DateLike) -> pd.Series | pd.Timestamp:
    """Floor dates to midnight on the first day of their month.

    Parameters
    ----------
    values : Series, DatetimeIndex or a single date-like
        Dates or timestamps (naive).

    Returns
    -------
    Series of datetime64[ns] or Timestamp
        A Series (same index) for array input, a Timestamp for a scalar.
    """
    if isinstance(values, (str, pd.Timestamp, _dt.date, np.datetime64)):
        return pd.Timestamp(values).to_period("M").to_timestamp()
    s = pd.to_datetime(pd.Series(values))
    return s.dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")


def add_months(month: DateLike, k: int) -> pd.Timestamp:
    """The month start ``k`` months after ``month``'s month (negative: before).

    >>> add_months("2024-11-15", 3)
    Timestamp('2025-02-01 00:00:00')
    """
    return month_start(month) + pd.DateOffset(months=int(k))


def month_end(month: DateLike) -> pd.Timestamp:
    """The last day (midnight) of ``month``'s month.

    >>> month_end("2024-02-10")
    Timestamp('2024-02-29 00:00:00')
    """
    return add_months(month, 1) - pd.Timedelta(days=1)


def month_index(values: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Month number ``year * 12 + month - 1`` of each date (int64).

    Parameters
    ----------
    values : Series, DatetimeIndex or array of datetime64

    Returns
    -------
    numpy.ndarray of int64

    Examples
    --------
    >>> month_index(pd.Series(pd.to_datetime(["2024-01-31", "2024-02-01"]))).tolist()
    [24288, 24289]
    """
    ts = pd.to_datetime(pd.Series(values))
    return (ts.dt.year.to_numpy() * 12 + ts.dt.month.to_numpy() - 1).astype(np.int64)


def from_month_index(index: np.ndarray | pd.Series) -> pd.Series:
    """First day of each month number (the inverse of :func:`month_index`).

    Parameters
    ----------
    index : array of int

    Returns
    -------
    Series of datetime64[ns]
    """
    idx = np.asarray(index, dtype=np.int64)
    frame = {"year": idx // 12, "month": idx % 12 + 1, "day": np.ones_like(idx)}
    return pd.Series(pd.to_datetime(frame)).astype("datetime64[ns]")


def cutoff_day(cutoff: DateLike) -> pd.Timestamp:
    """The cut-off as a day: midnight of the given date (a time of day is dropped).

    Raises
    ------
    FunnelDataError
        If ``cutoff`` is not a date.
    """
    try:
        ts = pd.Timestamp(cutoff)
    except (ValueError, TypeError):
        raise FunnelDataError(f"cut-off {cutoff!r} is not a date: write it as YYYY-MM-DD, "
                              "e.g. 2024-03-31.") from None
    if pd.isna(ts):
        raise FunnelDataError(f"cut-off {cutoff!r} is not a date: write it as YYYY-MM-DD.")
    if ts.tz is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def cutoff_end(cutoff: DateLike) -> pd.Timestamp:
    """The exclusive upper bound of the data known at cut-off day C: C + 1 day, midnight.

    Examples
    --------
    >>> cutoff_end("2024-03-31 15:00")
    Timestamp('2024-04-01 00:00:00')
    """
    return cutoff_day(cutoff) + pd.Timedelta(days=1)


def through_cutoff(frame: pd.DataFrame, column: str, cutoff: DateLike | None) -> pd.DataFrame:
    """Rows of ``frame`` known at cut-off day C: ``frame[column] < C + 1 day``.

    Parameters
    ----------
    frame : DataFrame
    column : str
        A datetime column (``entered_at`` for history, ``month`` for snapshots: a month
        value is its first day, so a cut-off inside a month keeps that month).
    cutoff : date-like or None
        The cut-off day; ``None`` keeps every row.

    Returns
    -------
    DataFrame
        The kept rows (the original index).
    """
    if cutoff is None:
        return frame
    return frame[pd.to_datetime(frame[column]) < cutoff_end(cutoff)]


def parse_month(value: Any, *, what: str = "month") -> pd.Timestamp:
    """Parse ``'YYYY-MM'`` (or a date / Timestamp) into the first day of that month.

    Parameters
    ----------
    value : str, datetime.date or pandas.Timestamp
        ``"2024-03"``, ``"2024-03-31"``, a date or a timestamp.
    what : str
        How to name the value in the error message (e.g. ``"--month"``).

    Returns
    -------
    pandas.Timestamp
        Midnight on the first day of the month.

    Raises
    ------
    FunnelDataError
        If the value is not a month.
    """
    if isinstance(value, (pd.Timestamp, _dt.date)):
        ts = pd.Timestamp(value)
    else:
        s = str(value).strip()
        ok = len(s) >= 7 and s[4] == "-" and s[:4].isdigit() and s[5:7].isdigit()
        ts = pd.to_datetime(s[:7] + "-01", format="%Y-%m-%d", errors="coerce") if ok else pd.NaT
        if (len(s) > 7 and s[7] != "-") or pd.isna(ts):
            raise FunnelDataError(f"{what} {value!r} is not a month: write it as YYYY-MM, e.g. 2024-03.")
    return pd.Timestamp(year=ts.year, month=ts.month, day=1)
