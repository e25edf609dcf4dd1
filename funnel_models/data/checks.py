"""The readers' validation engine: checks in DuckDB SQL over the table ``t``.

A reader materialises the source as the temporary table ``t0`` (every value VARCHAR, then
parsed columns next to the raw ones) and the view ``t`` (with ``_row``, the 1-based row
number in the file). Each check counts the offending rows and, if there are any, records
one problem naming the column, the count, the first rows (at most
:data:`~funnel_models.data.messages.MAX_SHOWN`) and the fix. :func:`raise_problems` then
raises one :class:`~funnel_models.errors.FunnelDataError` listing them all. Only the first
offending rows are fetched into Python.

Time stamps (:func:`timestamp_sql`): ISO 8601 (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.f]]``,
``T`` separator). A time written with a UTC offset (``Z``, ``+02:00``, ``-0500``, ``UTC``)
is converted to the spec's ``timezone``; a time without one is taken to be in that zone
already (:func:`note_timezones` says so in a warning whenever offsets were seen).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import warnings
from dataclasses import dataclass, field
import duckdb
import pandas as pd

from ..errors import FunnelDataError, FunnelWarning
from .messages import MAX_SHOWN, listing, plural, short_repr
from .sources import OpenedSource, encoding_problem, translate_read_error
from .spec import FunnelSpec
from .sql import quote_literal

__all__ = ["ReadContext", "check", "raise_problems", "materialise", "codes_table", "check_common",
           "timestamp_sql", "check_timestamps", "note_timezones", "month_select", "check_month",
           "warn_backwards", "check_outcome_conflicts", "MIN_DATE", "PLACEHOLDER_DATES", "DATE_FIX",
           "TZ_PATTERN"]

#: Dates before this are errors (typos such as 0202 for 2020).
MIN_DATE = "1900-01-01"
#: Dates that usually stand for "unknown" in exports; they warn.
PLACEHOLDER_DATES = ("1900-01-01", "1970-01-01")
#: How to write a date, for messages.
DATE_FIX = ("write dates in ISO 8601 form, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS "
            "(e.g. 2024-03-31 14:05:00)")
#: A time of day followed by a UTC offset or zone letter (a regular expression).
TZ_PATTERN = r"\d:\d{2}(:\d{2}(\.\d*)?)?\s*([zZ]|UTC|GMT|[+-]\d{2}(:?\d{2})?)$"
_MONTH_SQL = ("CASE WHEN regexp_full_match(m_raw, '\\d{4}-\\d{2}') THEN try_cast(m_raw || '-01' AS TIMESTAMP) "
              "WHEN regexp_full_match(m_raw, '\\d{4}-\\d{2}-\\d{2}([ T].*)?') "
              "THEN date_trunc('month', try_cast(m_raw AS TIMESTAMP)) END")


@dataclass
class ReadContext:
    """What a reader is validating.

    Attributes
    ----------
    con : duckdb.DuckDBPyConnection
        The connection holding ``src``, ``t0`` and ``t``.
    inp : OpenedSource
        The opened source.
    spec : FunnelSpec
    cols : dict
        Canonical name (or a layout column's own name) -> user column, for those present.
    problems : list of str
        Problems found so far.
    """

    con: duckdb.DuckDBPyConnection
    inp: OpenedSource
    spec: FunnelSpec
    cols: dict[str, str]
    problems: list[str] = field(default_factory=list)

    def desc(self, canon: str) -> str:
        """How messages name a column: ``column 'opp' (= lead_id)``."""
        col = self.cols.get(canon, canon)
        return f"column {col!r}" + (f" (= {canon})" if col != canon else "")

    def raw(self, canon: str) -> str:
        """SQL for the trimmed VARCHAR value of a column, NULL when blank."""
        return f"NULLIF(trim({self.inp.internal[self.cols[canon]]}), '')"


def check(ctx: ReadContext, canon: str, cond: str, what: tuple[str, str], fix: str,
          show: str | None = None) -> None:
    """Record a problem if SQL condition ``cond`` holds for any row of ``t``.

    Parameters
    ----------
    ctx : ReadContext
    canon : str
        The column the problem is about (see :meth:`ReadContext.desc`).
    cond : str
        SQL condition over ``t``.
    what : (str, str)
        The problem in the singular and the plural, e.g. ``("row has no date", "rows have no date")``.
    fix : str
        The fix.
    show : str, optional
        SQL expression whose value is shown next to each row number.
    """
    count = ctx.con.execute(f"SELECT count(*) FROM t WHERE {cond}").fetchall()[0][0]
    if not count:
        return
    rows = ctx.con.execute(f"SELECT _row, {show or 'NULL'} FROM t WHERE {cond} ORDER BY _row "
                           f"LIMIT {MAX_SHOWN}").fetchall()
    shown = ", ".join(f"row {r}" + (f": {short_repr(v)}" if v is not None else "") for r, v in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    ctx.problems.append(f"{ctx.desc(canon)}: {plural(count, *what)} -- {shown}{more} "
                        f"({ctx.inp.row_note}). Fix: {fix}")


def raise_problems(ctx: ReadContext) -> None:
    """Raise one :class:`FunnelDataError` listing every problem recorded, if any."""
    if not ctx.problems:
        return
    if len(ctx.problems) == 1:
        raise FunnelDataError(f"{ctx.inp.label}: {ctx.problems[0]}")
    raise FunnelDataError(f"{ctx.inp.label}: {len(ctx.problems)} problems:\n  - " + "\n  - ".join(ctx.problems))


def materialise(ctx: ReadContext, select: list[str]) -> int:
    """Create table ``t0`` from ``src`` with the ``select`` list, and the view ``t`` with
    ``_row``; return the row count.

    Raises
    ------
    FunnelDataError
        If the source cannot be read (encoding, ragged rows, quotes) or has no rows.
    """
    con = ctx.con
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE t0 AS SELECT " + ", ".join(select) + " FROM src")
    except duckdb.Error as exc:
        if "Invalid unicode" in str(exc) and ctx.inp.path is not None:
            raise encoding_problem(ctx.inp.path, ctx.inp.label, ctx.inp.encoding) from None
        raise translate_read_error(exc, ctx.inp) from None
    # rowid follows the file order (DuckDB preserves insertion order): no second copy needed
    con.execute("CREATE OR REPLACE TEMP VIEW t AS SELECT rowid + 1 AS _row, * FROM t0")
    n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    if n == 0:
        raise FunnelDataError(f"{ctx.inp.label}: the file has a header but no data rows (columns: "
                              f"{ctx.inp.columns}). Fix: export the data again, with rows.")
    return n


def codes_table(ctx: ReadContext) -> None:
    """Create ``codes(code, rk, kind)`` from :meth:`FunnelSpec.code_table`: every status
    code, its rank (open stages 0..K-1, won and lost K) and kind (``open``, ``won``, ``lost``)."""
    table = ctx.spec.code_table()
    ctx.con.register("spec_codes", table)
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE codes AS SELECT CAST(code AS VARCHAR) AS code, "
                    "CAST(rank AS INTEGER) AS rk, CAST(kind AS VARCHAR) AS kind FROM spec_codes")
    ctx.con.unregister("spec_codes")


def _check_unknown_stages(ctx: ReadContext) -> None:
    rows = ctx.con.execute(
        "SELECT stage, count(*) AS n, min(_row) AS r FROM t WHERE stage IS NOT NULL AND stage NOT IN "
        "(SELECT code FROM codes) GROUP BY stage ORDER BY r").fetchall()
    if not rows:
        return
    declared = list(ctx.spec.all_codes)
    total = sum(r[1] for r in rows)
    listed = rows[:50]
    vals = ", ".join(f"{v!r} ({plural(n, 'row', 'rows')}, first row {r})" for v, n, r in listed)
    if len(rows) > len(listed):
        vals += f", ... and {len(rows) - len(listed)} more distinct values"
    hints = []
    for v, _, _ in listed[:10]:
        folded = [c for c in declared if c.casefold() == v.casefold()]
        near = folded or difflib.get_close_matches(v, declared, n=1, cutoff=0.6)
        if near:
            hints.append(f"{v!r} -> {near[0]!r}?")
    hint = f" Close matches: {', '.join(hints)}." if hints else ""
    first = ctx.con.execute(
        f"SELECT _row FROM t WHERE stage IS NOT NULL AND stage NOT IN (SELECT code FROM codes) "
        f"ORDER BY _row LIMIT {MAX_SHOWN}").fetchall()
    ctx.problems.append(
        f"{ctx.desc('stage')}: {plural(total, 'row has', 'rows have')} {len(rows)} status code(s) not "
        f"declared in the spec: {vals}. First rows: {', '.join(str(r[0]) for r in first)} "
        f"({ctx.inp.row_note}). Declared codes: {declared}.{hint} Fix: add the codes to the spec's "
        "stages, won or lost lists, or correct the data (codes are case-sensitive).")


def check_common(ctx: ReadContext, has_lead: bool, has_stage: bool = True) -> None:
    """Blank lead ids, NUL characters in ids, blank and undeclared stages, non-numeric values."""
    if has_lead:
        check(ctx, "lead_id", "lead_id IS NULL", ("row has a blank lead id", "rows have a blank lead id"),
              "give every row a lead id, or drop those rows")
        check(ctx, "lead_id", "strpos(lead_id, chr(0)) > 0",
              ("lead id contains a NUL character", "lead ids contain a NUL character"),
              "the file is damaged or binary; export it again as CSV (UTF-8)")
    codes_table(ctx)
    if has_stage:
        check(ctx, "stage", "stage IS NULL", ("row has a blank stage", "rows have a blank stage"),
              "give every row a status code, or drop those rows")
        _check_unknown_stages(ctx)
    if "value" in ctx.cols:
        check(ctx, "value", "value_raw IS NOT NULL AND value IS NULL",
              # singular not fixed: tests/test_bad_input.py (non_numeric_value) pins "not numbers"
              ("values are not numbers", "values are not numbers"),
              "write plain numbers with a '.' decimal point and no currency sign or thousands "
              "separator (e.g. 12500.50)", show="value_raw")


def timestamp_sql(raw: str, timezone: str) -> str:
    """SQL parsing the VARCHAR expression ``raw`` into a TIMESTAMP in ``timezone``.

    Values with a UTC offset are read as instants and converted to ``timezone``; values
    without one are read as they are (NULL when not a date).
    """
    return (f"CASE WHEN regexp_matches({raw}, '{TZ_PATTERN}') "
            f"THEN timezone({quote_literal(timezone)}, try_cast({raw} AS TIMESTAMPTZ)) "
            f"ELSE try_cast({raw} AS TIMESTAMP) END")


def check_timestamps(ctx: ReadContext, canon: str, raw: str, ts: str, today: _dt.date, *,
                     required: bool) -> None:
    """Check a parsed time-stamp column of ``t`` (raw text in ``raw``, parsed in ``ts``):
    missing (when ``required``), not dates, in the future, before 1900; warn on placeholder
    dates and note converted time zones."""
    if required:
        check(ctx, canon, f"{raw} IS NULL", ("row has no date", "rows have no date"),
              "fill in the date every stage was entered, or drop those rows")
    check(ctx, canon, f"{raw} IS NOT NULL AND {ts} IS NULL", ("value is not a date", "values are not dates"),
          DATE_FIX, show=raw)
    check(ctx, canon, f"CAST({ts} AS DATE) > DATE '{today.isoformat()}'",
          (f"date is in the future (after today, {today.isoformat()})",
           f"dates are in the future (after today, {today.isoformat()})"),
          "correct the dates (a day/month swap or a wrong year?)", show=raw)
    check(ctx, canon, f"{ts} < TIMESTAMP '{MIN_DATE}'", ("date is before 1900", "dates are before 1900"),
          "correct the years (likely typos, e.g. 0202 for 2020)", show=raw)
    placeholders = ", ".join(f"DATE '{d}'" for d in PLACEHOLDER_DATES)
    cond = f"CAST({ts} AS DATE) IN ({placeholders})"
    n = ctx.con.execute(f"SELECT count(*) FROM t WHERE {cond}").fetchall()[0][0]
    if n:
        rows = [r[0] for r in ctx.con.execute(f"SELECT _row FROM t WHERE {cond} ORDER BY _row "
                                              f"LIMIT {MAX_SHOWN}").fetchall()]
        warnings.warn(f"{ctx.inp.label}: {ctx.desc(canon)}: {plural(n, 'date is', 'dates are')} "
                      f"{' or '.join(PLACEHOLDER_DATES)}, which exports use for 'unknown' (rows "
                      f"{rows}{' ...' if n > len(rows) else ''}); they are kept as real dates. Fix: blank "
                      "or correct them.", FunnelWarning, stacklevel=5)
    note_timezones(ctx, canon, raw)


def note_timezones(ctx: ReadContext, canon: str, raw: str) -> None:
    """Warn (a note, not an error) when values of ``raw`` carry UTC offsets: say how many,
    which offsets, and that they were converted to the spec's time zone."""
    n_tz, n_all = ctx.con.execute(
        f"SELECT count(*) FILTER (WHERE regexp_matches({raw}, '{TZ_PATTERN}')), count({raw}) FROM t").fetchall()[0]
    if not n_tz:
        return
    offsets = [r[0] for r in ctx.con.execute(
        f"SELECT DISTINCT regexp_extract({raw}, '([zZ]|UTC|GMT|[+-]\\d{{2}}(:?\\d{{2}})?)$') AS o FROM t "
        f"WHERE regexp_matches({raw}, '{TZ_PATTERN}') ORDER BY o LIMIT 6").fetchall()]
    tz = ctx.spec.timezone
    naive = n_all - n_tz
    rest = (f"; the other {naive} have no offset and are taken to be in {tz} already" if naive else "")
    warnings.warn(f"{ctx.inp.label}: {ctx.desc(canon)}: {n_tz} time stamp(s) carry a UTC offset "
                  f"({', '.join(offsets)}); converted to {tz} (the spec's 'timezone'){rest}. Fix: set "
                  "timezone: in the spec to the zone you report in.", FunnelWarning, stacklevel=5)


def month_select(ctx: ReadContext, month: pd.Timestamp | None) -> list[str]:
    """Select items ``m_raw`` (text) and ``month`` (first of month) from the month column,
    or from ``month`` for a file without one.

    Raises
    ------
    FunnelDataError
        If there is neither a month column nor a given month.
    """
    if "month" in ctx.cols:
        raw = ctx.raw("month")
    elif month is None:
        raise FunnelDataError(
            f"{ctx.inp.label}: no month column (columns: {ctx.inp.columns}). Fix: add a month column "
            "(YYYY-MM), map one with --map month=<column>, or pass the month of the whole file with "
            "month='YYYY-MM' (CLI: --month YYYY-MM).")
    else:
        raw = quote_literal(month.strftime("%Y-%m"))
    return [f"{raw} AS m_raw", f"{_MONTH_SQL.replace('m_raw', f'({raw})')} AS month"]


def check_month(ctx: ReadContext, month: pd.Timestamp | None, today: _dt.date) -> None:
    """Missing, malformed, future and pre-1900 months; rows outside a given month."""
    check(ctx, "month", "m_raw IS NULL", ("row has no month", "rows have no month"),
          "fill in the month (YYYY-MM) of every row, or drop those rows")
    check(ctx, "month", "m_raw IS NOT NULL AND month IS NULL",
          ("month is not in YYYY-MM form", "months are not in YYYY-MM form"),
          "write months as YYYY-MM, e.g. 2024-03 (an ISO date such as 2024-03-31 also works)",
          show="m_raw")
    this_month = _dt.date(today.year, today.month, 1).isoformat()
    check(ctx, "month", f"month > TIMESTAMP '{this_month}'",
          (f"month is in the future (after {today:%Y-%m})", f"months are in the future (after {today:%Y-%m})"),
          "correct the months; data cannot describe months that have not started", show="m_raw")
    check(ctx, "month", f"month < TIMESTAMP '{MIN_DATE}'", ("month is before 1900", "months are before 1900"),
          "correct the years (likely typos)", show="m_raw")
    if month is not None and "month" in ctx.cols:
        check(ctx, "month", f"month IS NOT NULL AND month <> TIMESTAMP '{month:%Y-%m-%d}'",
              (f"row is not in the given month {month:%Y-%m}", f"rows are not in the given month {month:%Y-%m}"),
              "drop month= / --month to use the file's month column, or pass the month the "
              "file contains", show="m_raw")


def warn_backwards(ctx: ReadContext, time_col: str, table: str) -> None:
    """:class:`FunnelWarning` for leads that move backwards in the funnel (never an error)."""
    con = ctx.con
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE bw AS SELECT lead_id, stage, {time_col} AS ts, rk, "
        f"max(rk) OVER (PARTITION BY lead_id ORDER BY {time_col}, rk ROWS BETWEEN UNBOUNDED "
        f"PRECEDING AND 1 PRECEDING) AS prev_max, min(rk) OVER (PARTITION BY lead_id) AS first_rk "
        f"FROM {table} JOIN codes ON stage = code")
    n_rows, n_leads = con.execute(
        "SELECT count(*), count(DISTINCT lead_id) FROM bw WHERE rk < prev_max").fetchall()[0]
    if not n_rows:
        con.execute("DROP TABLE bw")
        return
    early = con.execute(
        "SELECT count(*) FROM (SELECT lead_id, min(ts) FILTER (WHERE rk = first_rk) AS t_first, "
        "min(ts) FILTER (WHERE rk > first_rk) AS t_later FROM bw GROUP BY lead_id) "
        "WHERE t_later < t_first").fetchall()[0][0]
    ex = con.execute(
        "SELECT lead_id, stage, ts, prev_stage, prev_ts FROM (SELECT *, lag(stage) OVER w AS prev_stage, "
        "lag(ts) OVER w AS prev_ts FROM bw WINDOW w AS (PARTITION BY lead_id ORDER BY ts, rk)) "
        "WHERE rk < prev_max ORDER BY lead_id LIMIT 3").fetchall()
    con.execute("DROP TABLE bw")
    examples = "; ".join(f"lead {lid!r}: {ps} ({pt:%Y-%m-%d}) -> {s} ({t:%Y-%m-%d})"
                         for lid, s, t, ps, pt in ex)
    early_txt = (f" {early} of these leads entered a later stage before their earliest-in-funnel "
                 "stage (check the dates and time zones);" if early else "")
    warnings.warn(
        f"{ctx.inp.label}: {n_leads} lead(s) move backwards in the funnel ({n_rows} row(s));"
        f"{early_txt} e.g. {examples}. They are counted at the furthest stage reached.",
        FunnelWarning, stacklevel=5)


def check_outcome_conflicts(ctx: ReadContext, table: str, rows_note: str | None = None) -> None:
    """Error for a lead that is won and lost at the same time stamp (in stage history
    ``table``): which outcome is true cannot be told."""
    bad = ctx.con.execute(
        f"SELECT lead_id, entered_at, list(DISTINCT stage ORDER BY stage), list(_row ORDER BY _row) "
        f"FROM {table} JOIN codes ON stage = code WHERE kind IN ('won', 'lost') "
        f"GROUP BY lead_id, entered_at HAVING count(DISTINCT kind) = 2 ORDER BY min(_row)").fetchall()
    if not bad:
        return
    shown = listing([f"lead {lid!r} at {ts:%Y-%m-%d %H:%M:%S}: {codes} (rows {rows[:MAX_SHOWN]})"
                     for lid, ts, codes, rows in bad])
    raise FunnelDataError(
        f"{ctx.inp.label}: {plural(len(bad), 'lead is', 'leads are')} both won and lost at the same "
        f"time -- {shown} ({rows_note or ctx.inp.row_note}). A deal closes once, and which "
        "outcome is true cannot be told. Fix: remove the wrong row, or give the rows their real "
        "times.")

