"""Read stage histories, monthly snapshots, stage counts and one-row-per-deal exports.

Four input shapes are understood (see ``ARCHITECTURE.md`` for the canonical tables):

* **history** -- one row per stage change: ``lead_id``, ``stage``, ``entered_at``;
* **snapshots** -- one row per lead and month: ``month``, ``lead_id``, ``stage``;
* **counts** -- one row per month and stage: ``month``, ``stage``, ``count``;
* **opportunities** -- one row per deal with a date column per milestone and a status
  (the spec says which column is which); read into canonical stage **history**.

Each may carry attribute columns (``spec.attributes``, kept as strings) and, for history,
snapshots and opportunities, a deal-value column (canonical name ``value``).

Sources
-------
``source`` is a path to a CSV or Parquet file, ``"path/to/file.duckdb::table_name"`` (a
table or view in a DuckDB database file) or a :class:`pandas.DataFrame`; opening it is
the job of :mod:`funnel_models.data.sources`, whose docstring has the details. Columns are
found by :mod:`funnel_models.data.columns` (the spec's ``columns`` mapping and ``mapping``).

How it works
------------
All parsing and validation runs in DuckDB SQL (:mod:`funnel_models.data.checks`) over an
in-memory DuckDB table (DuckDB's CSV reader streams the file, every column read as
VARCHAR). Only the first offending rows of a failed check are fetched into Python. The
validated result is fetched once, column-wise, into a DataFrame and checked against its
contract (:mod:`funnel_models.data.schemas`).

Errors and warnings
-------------------
Every problem raises :class:`~funnel_models.errors.FunnelDataError` with one message that
names the file, the column, the first offending rows (1-based data rows, the header not
counted, at most 5 shown) and the fix. All row-level problems found are listed in that
one message. Problems with the spec itself raise :class:`~funnel_models.errors.SpecError`.
A lead won and lost at the same time stamp is an error naming the lead.

Suspicious but usable data emits :class:`~funnel_models.errors.FunnelWarning`:

* a lead that moves backwards in the funnel (enters an open stage earlier in the funnel
  than one it already reached, or re-opens after a won/lost code). Won and lost codes
  share the rank after the last open stage, so WON -> LOST is not "backwards";
* a later-funnel stage entered *before* the lead's earliest-in-funnel stage (e.g. a won
  date before the first contact), reported with its own count; downstream code
  (``derive``) counts such a lead at the furthest stage it reached;
* exact duplicate rows (dropped), duplicate snapshot rows that agree (dropped) and
  duplicate count rows (summed);
* placeholder dates (1900-01-01, 1970-01-01), kept;
* time stamps written with a UTC offset, converted to the spec's ``timezone``.

Dates: ISO 8601 (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.f]]``, ``T`` separator). A time
with a UTC offset (``Z``, ``+02:00``) is converted to the spec's ``timezone`` (default
UTC); a time without one is taken to be in that zone. Dates after today and before 1900
are errors.
"""
from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..errors import FunnelDataError, FunnelWarning
from .checks import (ReadContext, check, check_common, check_month, check_outcome_conflicts,
                     check_timestamps, materialise, month_select, raise_problems, timestamp_sql,
                     warn_backwards)
from .columns import INPUT_SHAPES, NEEDS, SHAPES, InputShape, Shape, detect_shape, select_columns
from .dates import parse_month
from .messages import MAX_SHOWN, listing
from .opportunities import check_opportunities, layout_columns, opportunity_history, opportunity_select
from .schemas import canonical_dtypes, schema_for, validate
from .sources import Source, opened
from .spec import FunnelSpec
from .sql import quote_ident

__all__ = ["Shape", "SHAPES", "INPUT_SHAPES", "Source", "read_history", "read_snapshots", "read_counts",
           "read_opportunities", "read_any", "source_columns"]

SpecLike = FunnelSpec | Mapping[str, Any] | str | Path
_STACK = 5  # warnings point at the caller of the public reader


def _attr_select(ctx: ReadContext) -> list[str]:
    return [f"{ctx.raw(a)} AS {quote_ident(a)}" for a in ctx.spec.attributes]


def _value_select(ctx: ReadContext) -> list[str]:
    if "value" not in ctx.cols:
        return []
    return [f"{ctx.raw('value')} AS value_raw", f"try_cast({ctx.raw('value')} AS DOUBLE) AS value"]


def _fetch(ctx: ReadContext, sql: str, str_cols: Sequence[str], ts_cols: Sequence[str]) -> pd.DataFrame:
    df = ctx.con.sql(sql).to_arrow_table().to_pandas()  # arrow: ~2x faster than .df()
    return canonical_dtypes(df, str_cols, ts_cols)


def _finish_history(ctx: ReadContext, table: str) -> pd.DataFrame:
    """Drop exact duplicates (warned), refuse won-and-lost-at-once, warn backward moves,
    fetch the history sorted by lead, time and funnel rank."""
    con, spec = ctx.con, ctx.spec
    dup = con.execute(f"SELECT count(*) - count(DISTINCT (lead_id, stage, entered_at)) FROM {table}").fetchall()[0][0]
    if dup:
        warnings.warn(f"{ctx.inp.label}: {dup} exact duplicate row(s) (same lead, stage and "
                      "date) dropped.", FunnelWarning, stacklevel=_STACK)
        con.execute(f"CREATE OR REPLACE TEMP TABLE h AS SELECT * FROM {table} QUALIFY row_number() OVER "
                    "(PARTITION BY lead_id, stage, entered_at ORDER BY _row) = 1")
    else:  # the common case: no copy needed
        con.execute(f"CREATE OR REPLACE TEMP VIEW h AS SELECT * FROM {table}")
    check_outcome_conflicts(ctx, "h")
    warn_backwards(ctx, "entered_at", "h")
    attrs = [quote_ident(a) for a in spec.attributes]
    out = ["lead_id", "stage", "entered_at"] + attrs + (["value"] if "value" in ctx.cols else [])
    return _fetch(ctx, f"SELECT {', '.join(out)} FROM h JOIN codes ON stage = code "
                       "ORDER BY lead_id, entered_at, rk, _row",
                  ["lead_id", "stage", *spec.attributes], ["entered_at"])


def _history(ctx: ReadContext, month: pd.Timestamp | None, today: _dt.date) -> pd.DataFrame:
    raw = ctx.raw("entered_at")
    sel = [f"{ctx.raw('lead_id')} AS lead_id", f"{ctx.raw('stage')} AS stage", f"{raw} AS entered_raw",
           f"{timestamp_sql(raw, ctx.spec.timezone)} AS entered_at"]
    materialise(ctx, sel + _attr_select(ctx) + _value_select(ctx))
    check_common(ctx, has_lead=True)
    check_timestamps(ctx, "entered_at", "entered_raw", "entered_at", today, required=True)
    raise_problems(ctx)
    return _finish_history(ctx, "t")


def _opportunities(ctx: ReadContext, month: pd.Timestamp | None, today: _dt.date) -> pd.DataFrame:
    layout = layout_columns(ctx)
    sel = [f"{ctx.raw('lead_id')} AS lead_id"] + opportunity_select(ctx, layout)
    materialise(ctx, sel + _attr_select(ctx) + _value_select(ctx))
    check_common(ctx, has_lead=True, has_stage=False)
    check_opportunities(ctx, layout, today)
    extra = list(ctx.spec.attributes) + (["value"] if "value" in ctx.cols else [])
    return _finish_history(ctx, opportunity_history(ctx, extra))


def _snapshot_conflicts(ctx: ReadContext) -> None:
    conflicts = ctx.con.execute(
        "SELECT lead_id, month, list(DISTINCT stage ORDER BY stage), list(_row ORDER BY _row) FROM t "
        "GROUP BY lead_id, month HAVING count(DISTINCT stage) > 1 ORDER BY min(_row)").fetchall()
    if conflicts:
        shown = listing([f"lead {lid!r} in {m:%Y-%m}: stages {st} at rows {rows[:MAX_SHOWN]}"
                         for lid, m, st, rows in conflicts])
        raise FunnelDataError(
            f"{ctx.inp.label}: {ctx.desc('lead_id')} and {ctx.desc('month')}: {len(conflicts)} "
            f"(lead, month) pair(s) have rows with conflicting stages -- {shown} "
            f"({ctx.inp.row_note}). A snapshot holds one status per lead and month. Fix: keep "
            "only the status at the end of each month (the last change).")


def _snapshots(ctx: ReadContext, month: pd.Timestamp | None, today: _dt.date) -> pd.DataFrame:
    con, spec = ctx.con, ctx.spec
    sel = month_select(ctx, month) + [f"{ctx.raw('lead_id')} AS lead_id", f"{ctx.raw('stage')} AS stage"]
    materialise(ctx, sel + _attr_select(ctx) + _value_select(ctx))
    check_month(ctx, month, today)
    check_common(ctx, has_lead=True)
    raise_problems(ctx)
    _snapshot_conflicts(ctx)
    dup = con.execute("SELECT count(*) - count(DISTINCT (lead_id, month)) FROM t").fetchall()[0][0]
    if dup:
        warnings.warn(f"{ctx.inp.label}: {dup} duplicate (lead, month) row(s) with the same stage "
                      "dropped (the first row is kept).", FunnelWarning, stacklevel=_STACK)
    con.execute("CREATE OR REPLACE TEMP TABLE s AS SELECT t.* FROM t QUALIFY row_number() OVER "
                "(PARTITION BY lead_id, month ORDER BY _row) = 1")
    warn_backwards(ctx, "month", "s")
    attrs = [quote_ident(a) for a in spec.attributes]
    out = ["month", "lead_id", "stage"] + attrs + (["value"] if "value" in ctx.cols else [])
    return _fetch(ctx, f"SELECT {', '.join(out)} FROM s ORDER BY lead_id, month",
                  ["lead_id", "stage", *spec.attributes], ["month"])


def _counts(ctx: ReadContext, month: pd.Timestamp | None, today: _dt.date) -> pd.DataFrame:
    con, spec = ctx.con, ctx.spec
    sel = month_select(ctx, month) + [f"{ctx.raw('stage')} AS stage", f"{ctx.raw('count')} AS count_raw",
                                      f"try_cast({ctx.raw('count')} AS DOUBLE) AS count_num"]
    materialise(ctx, sel + _attr_select(ctx))
    check_month(ctx, month, today)
    check_common(ctx, has_lead=False)
    check(ctx, "count", "count_raw IS NULL", ("row has no count", "rows have no count"),
          "fill in the count (0 if none), or drop those rows")
    check(ctx, "count", "count_raw IS NOT NULL AND (count_num IS NULL OR isnan(count_num) OR "
          "isinf(count_num) OR count_num <> round(count_num))",
          ("count is not a whole number", "counts are not whole numbers"),
          "write counts as whole numbers without decimals or thousands separators (e.g. 1250)",
          show="count_raw")
    check(ctx, "count", "count_num < 0", ("count is negative", "counts are negative"),
          "counts cannot be negative; correct or drop those rows", show="count_raw")
    raise_problems(ctx)
    attrs = [quote_ident(a) for a in spec.attributes]
    keys = ["month", "stage"] + attrs
    dup = con.execute(f"SELECT count(*) - count(DISTINCT ({', '.join(keys)})) FROM t").fetchall()[0][0]
    if dup:
        warnings.warn(f"{ctx.inp.label}: {dup} row(s) repeat a (month, stage"
                      f"{', ' if attrs else ''}{', '.join(spec.attributes)}) already seen; their "
                      "counts are summed.", FunnelWarning, stacklevel=_STACK)
    return _fetch(ctx, f"SELECT {', '.join(keys)}, CAST(sum(count_num) AS BIGINT) AS count FROM t "
                       f"JOIN codes ON stage = code GROUP BY {', '.join(keys)}, rk "
                       f"ORDER BY month, rk, {', '.join(attrs) or 'stage'}",
                  ["stage", *spec.attributes], ["month"])


_READERS = {"history": _history, "snapshots": _snapshots, "counts": _counts, "opportunities": _opportunities}
_COLUMNS = {"history": (NEEDS["history"], ("value",)), "snapshots": (("lead_id", "stage"), ("month", "value")),
            "counts": (("stage", "count"), ("month",)), "opportunities": (("lead_id",), ("value",))}


def _run(kind: InputShape, source: Any, spec: SpecLike, mapping: Mapping[str, str] | None, month: Any,
         delimiter: str | None, encoding: str | None, today: _dt.date | None) -> pd.DataFrame:
    spec = FunnelSpec.load(spec)
    today = today or _dt.date.today()
    month_ts = parse_month(month, what="month") if month is not None else None
    with opened(source, delimiter, encoding) as (con, inp):
        required, optional = _COLUMNS[kind]
        cols = select_columns(inp.label, inp.columns, spec, mapping, required, optional)
        df = _READERS[kind](ReadContext(con, inp, spec, cols), month_ts, today)
        label = inp.label
    stored = "history" if kind == "opportunities" else kind
    return validate(df, schema_for(stored, spec, spec.attributes), f"{label} ({kind})")


# ====================================================================== public readers
def read_history(source: Any, spec: SpecLike, *, mapping: Mapping[str, str] | None = None,
                 delimiter: str | None = None, encoding: str | None = None,
                 today: _dt.date | None = None) -> pd.DataFrame:
    """Read a stage history (one row per stage change).

    Parameters
    ----------
    source : path, ``"file.duckdb::table"`` or DataFrame
        CSV, Parquet or DuckDB table (see :mod:`funnel_models.data.sources`).
    spec : FunnelSpec, mapping or path to YAML
        The funnel spec: status codes, column mapping, attributes, time zone.
    mapping : mapping of str to str, optional
        Canonical name -> your column name; overrides ``spec.columns``.
    delimiter : str, optional
        CSV delimiter (default ``,``; ``\\t`` for ``.tsv``).
    encoding : str, optional
        CSV text encoding (default UTF-8), any Python codec name, e.g. ``"latin-1"``.
    today : datetime.date, optional
        The date after which dates count as "in the future" (default: today).

    Returns
    -------
    pandas.DataFrame
        ``lead_id`` (str), ``stage`` (str), ``entered_at`` (datetime64[ns], in the spec's
        time zone), the spec's attributes (str), and ``value`` (float64) if the source has
        one; sorted by ``lead_id``, ``entered_at``. Exact duplicate rows are dropped.

    Raises
    ------
    FunnelDataError
        On any malformed input, with one message naming the file, column, rows and fix;
        also for a lead won and lost at the same time stamp.

    Warns
    -----
    FunnelWarning
        Leads that move backwards, stages entered before the lead's first stage,
        duplicate rows, placeholder dates, converted time zones.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = {"stages": ["NEW", "QUAL"], "won": ["WON"], "lost": ["LOST"]}
    >>> raw = pd.DataFrame({"opp": ["a", "a"], "stage": ["NEW", "QUAL"],
    ...                     "entered_at": ["2024-01-03", "2024-02-10"]})
    >>> read_history(raw, spec, mapping={"lead_id": "opp"})["stage"].tolist()
    ['NEW', 'QUAL']
    """
    return _run("history", source, spec, mapping, None, delimiter, encoding, today)


def read_opportunities(source: Any, spec: SpecLike, *, mapping: Mapping[str, str] | None = None,
                       delimiter: str | None = None, encoding: str | None = None,
                       today: _dt.date | None = None) -> pd.DataFrame:
    """Read a one-row-per-deal export into canonical stage history.

    The spec gives each stage its ``date_column`` and says how the outcome is recorded
    (``status`` + ``closed_at``, or date columns on won/lost codes); see
    :mod:`funnel_models.data.opportunities`.

    Parameters
    ----------
    source, spec, mapping, delimiter, encoding, today
        As in :func:`read_history`.

    Returns
    -------
    pandas.DataFrame
        Canonical stage history, as :func:`read_history` returns.

    Raises
    ------
    FunnelDataError
        Duplicate deal ids, unparseable dates, won/lost deals without a close date,
        unlisted status values, rows without any date, more than one outcome date.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = {"stages": [{"code": "NEW", "name": "New", "date_column": "created"},
    ...                    {"code": "PROP", "name": "Proposal", "date_column": "proposal"}],
    ...         "won": ["WON"], "lost": ["LOST"], "closed_at": "closed",
    ...         "status": {"column": "status", "won": ["Won"], "lost": ["Lost"]},
    ...         "columns": {"lead_id": "deal"}}
    >>> raw = pd.DataFrame({"deal": ["d1"], "created": ["2024-01-03"], "proposal": ["2024-02-01"],
    ...                     "status": ["Won"], "closed": ["2024-03-05"]})
    >>> read_opportunities(raw, spec)["stage"].tolist()
    ['NEW', 'PROP', 'WON']
    """
    return _run("opportunities", source, spec, mapping, None, delimiter, encoding, today)


def read_snapshots(source: Any, spec: SpecLike, *, mapping: Mapping[str, str] | None = None,
                   month: Any = None, delimiter: str | None = None, encoding: str | None = None,
                   today: _dt.date | None = None) -> pd.DataFrame:
    """Read monthly snapshots (the status of every lead at each month's end).

    Parameters
    ----------
    source, spec, mapping, delimiter, encoding, today
        As in :func:`read_history`.
    month : str or date, optional
        ``"YYYY-MM"``: the month of a file without a month column (a monthly export); if
        the file has a month column, every row must be in this month.

    Returns
    -------
    pandas.DataFrame
        ``month`` (datetime64[ns], first of month), ``lead_id``, ``stage``, attributes,
        ``value`` if present; sorted by ``lead_id``, ``month``. Month values may be
        ``YYYY-MM`` or an ISO date (floored to its month).

    Raises
    ------
    FunnelDataError
        On malformed input, including a lead with two different stages in one month.
    """
    return _run("snapshots", source, spec, mapping, month, delimiter, encoding, today)


def read_counts(source: Any, spec: SpecLike, *, mapping: Mapping[str, str] | None = None,
                month: Any = None, delimiter: str | None = None, encoding: str | None = None,
                today: _dt.date | None = None) -> pd.DataFrame:
    """Read aggregate stage counts per month.

    Parameters
    ----------
    source, spec, mapping, month, delimiter, encoding, today
        As in :func:`read_snapshots`.

    Returns
    -------
    pandas.DataFrame
        ``month`` (datetime64[ns]), ``stage`` (str), ``count`` (int64), attributes;
        rows repeating a (month, stage, attributes) key are summed (with a warning).

    Raises
    ------
    FunnelDataError
        On malformed input: negative or non-integer counts, unknown stages, bad months.
    """
    return _run("counts", source, spec, mapping, month, delimiter, encoding, today)


def source_columns(source: Any, delimiter: str | None = None, encoding: str | None = None) -> tuple[str, list[str]]:
    """How messages name ``source``, and its column names (reads only the header).

    Raises
    ------
    FunnelDataError
        If the source cannot be opened.
    """
    with opened(source, delimiter, encoding) as (_, inp):
        return inp.label, list(inp.columns)


def read_any(source: Any, spec: SpecLike, shape: InputShape | None = None,
             mapping: Mapping[str, str] | None = None, *, month: Any = None,
             delimiter: str | None = None, encoding: str | None = None,
             today: _dt.date | None = None) -> tuple[Shape, pd.DataFrame]:
    """Read any input shape, detecting it from the columns and spec unless given.

    Parameters
    ----------
    source, spec, mapping, delimiter, encoding, today
        As in :func:`read_history`.
    shape : {"history", "snapshots", "counts", "opportunities"}, optional
        Force the shape instead of detecting it (:func:`~funnel_models.data.columns.detect_shape`).
    month : str, optional
        For snapshots and counts, as in :func:`read_snapshots`. Ignored for history
        (the store uses it to choose month-replace; see :class:`funnel_models.data.store.Store`).

    Returns
    -------
    (shape, DataFrame)
        The canonical shape (``"history"`` for a one-row-per-deal export) and the table.

    Raises
    ------
    FunnelDataError
        If the shape cannot be told or the data is malformed.
    """
    spec = FunnelSpec.load(spec)
    if shape is None:
        label, columns = source_columns(source, delimiter, encoding)
        shape = detect_shape(columns, spec, mapping, month_given=month is not None, source=label)
    elif shape not in INPUT_SHAPES:
        raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(INPUT_SHAPES)}.")
    if shape == "opportunities" and not spec.is_opportunities:
        raise FunnelDataError("shape 'opportunities' needs a spec that gives the stages their date "
                              "columns, e.g. {code: NEW, name: New, date_column: created_at}; "
                              "'funnel init FILE' writes one.")
    if shape in ("history", "opportunities"):
        reader = read_opportunities if shape == "opportunities" else read_history
        return "history", reader(source, spec, mapping=mapping, delimiter=delimiter,
                                 encoding=encoding, today=today)
    reader2 = read_snapshots if shape == "snapshots" else read_counts
    return shape, reader2(source, spec, mapping=mapping, month=month, delimiter=delimiter,  # type: ignore[return-value]
                          encoding=encoding, today=today)

