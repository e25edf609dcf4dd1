"""Read stage histories, monthly snapshots and stage counts from CSV, Parquet or DuckDB.

Three input shapes are understood (see ``ARCHITECTURE.md`` for the canonical tables):

* **history** -- one row per stage change: ``lead_id``, ``stage``, ``entered_at``;
* **snapshots** -- one row per lead and month: ``month``, ``lead_id``, ``stage``;
* **counts** -- one row per month and stage: ``month``, ``stage``, ``count``.

Each may carry attribute columns (``spec.attributes``, kept as strings) and, for history
and snapshots, a deal-value column (canonical name ``value``).

Sources
-------
``source`` is a path to a CSV or Parquet file, ``"path/to/file.duckdb::table_name"`` (a
table or view in a DuckDB database file) or a :class:`pandas.DataFrame`; opening it is
the job of :mod:`funnel_models.data.sources`, whose docstring has the details.

Column mapping
--------------
``spec.columns`` maps canonical names (``lead_id``, ``stage``, ``entered_at``, ``month``,
``count``, ``value`` or an attribute name) to the user's column names; the ``mapping``
argument updates it. An unmapped canonical column is looked up under its own name, and
if that is absent, case-insensitively.

How it works
------------
All parsing and validation runs in DuckDB SQL over an in-memory DuckDB table (DuckDB's
CSV reader streams the file, every column read as VARCHAR). Only the first offending
rows of a failed check are fetched into Python. The validated result is fetched once,
column-wise, into a DataFrame.

Errors and warnings
-------------------
Every problem raises :class:`~funnel_models.errors.FunnelDataError` with one message that
names the file, the column, the first offending rows (1-based data rows, the header not
counted, at most 5 shown) and the fix. All row-level problems found are listed in that
one message. Problems with the spec itself raise
:class:`~funnel_models.errors.SpecError` (from :mod:`funnel_models.data.spec`).

Suspicious but usable data emits :class:`~funnel_models.errors.FunnelWarning`:

* a lead that moves backwards in the funnel (enters an open stage earlier in the funnel
  than one it already reached, or re-opens after a won/lost code). Won and lost codes
  share the rank after the last open stage, so WON -> LOST is not "backwards";
* a later-funnel stage entered *before* the lead's earliest-in-funnel stage (e.g. a won
  date before the first contact). In time order this is a backward move, so it is a
  **warning, not an error**, reported with its own count; downstream code
  (``derive``) counts such a lead at the furthest stage it reached;
* exact duplicate rows (dropped), duplicate snapshot rows that agree (dropped) and
  duplicate count rows (summed).

Dates: ISO 8601 (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.f]]``, ``T`` separator). A
time-zone suffix (``Z``, ``+02:00``) is accepted but ignored: times are kept as written.
Dates after today and before 1900 are errors.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import duckdb
import pandas as pd

from ..errors import FunnelDataError, FunnelWarning
from .sources import Source, _closest, _encoding_problem, _Input, _lit, _open, _q, translate_read_error
from .spec import CANONICAL_COLUMNS, FunnelSpec

__all__ = [
    "Shape",
    "SHAPES",
    "Source",
    "canonical_dtypes",
    "read_history",
    "read_snapshots",
    "read_counts",
    "read_any",
    "detect_shape",
    "parse_month",
    "resolve_mapping",
]

Shape = Literal["history", "snapshots", "counts"]
#: The three input shapes.
SHAPES: tuple[str, ...] = ("history", "snapshots", "counts")

_MAX_SHOWN = 5
_MIN_DATE = "1900-01-01"


# ====================================================================== small helpers
def _short(value: Any, width: int = 40) -> str:
    s = repr(value)
    return s if len(s) <= width else s[: width - 4] + "...'"


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

    Examples
    --------
    >>> parse_month("2024-03")
    Timestamp('2024-03-01 00:00:00')
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


# ====================================================================== column mapping
def resolve_mapping(spec: FunnelSpec, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge ``spec.columns`` with ``mapping`` and check the keys.

    Parameters
    ----------
    spec : FunnelSpec
        The funnel spec.
    mapping : mapping of str to str, optional
        Canonical name (``lead_id``, ``stage``, ``entered_at``, ``month``, ``count``,
        ``value`` or an attribute) -> the user's column name. Overrides ``spec.columns``.

    Returns
    -------
    dict
        The explicit mapping (canonical -> user column).

    Raises
    ------
    FunnelDataError
        If a key is not a canonical column or attribute, or a value is not a string.
    """
    out = dict(spec.columns)
    if spec.value and "value" not in out:
        out["value"] = spec.value
    if mapping:
        allowed = list(CANONICAL_COLUMNS) + list(spec.attributes)
        for key, col in mapping.items():
            if key not in allowed:
                raise FunnelDataError(
                    f"column mapping: unknown key {key!r}.{_closest(key, allowed)} The keys are the "
                    f"canonical columns {list(CANONICAL_COLUMNS)} or an attribute "
                    f"{list(spec.attributes)}; the values are your column names, e.g. "
                    "lead_id=opportunity (CLI: --map lead_id=opportunity).")
            if not isinstance(col, str) or not col.strip():
                raise FunnelDataError(f"column mapping: {key} must map to a column name, got {col!r}.")
            out[key] = col.strip()
    return out


def _find(columns: Sequence[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.strip().casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _locate(columns: Sequence[str], explicit: Mapping[str, str], canon: str) -> tuple[str | None, bool]:
    """(user column or None, whether the mapping named it explicitly)."""
    if canon in explicit:
        return _find(columns, explicit[canon]), True
    return _find(columns, canon), False


def _missing_mapped(label: str, canon: str, wanted: str, columns: Sequence[str], source: str) -> FunnelDataError:
    return FunnelDataError(
        f"{label}: the column mapping ({source}) maps {canon} to column {wanted!r}, which does not "
        f"exist.{_closest(wanted, columns)} Available columns: {list(columns)}. Fix: correct the "
        f"mapping, e.g. --map {canon}=<one of those columns>.")


_NEEDS: dict[str, tuple[str, ...]] = {
    "history": ("lead_id", "stage", "entered_at"),
    "snapshots": ("month", "lead_id", "stage"),
    "counts": ("month", "stage", "count"),
}


def detect_shape(columns: Sequence[str], spec: FunnelSpec | Mapping[str, Any] | str | Path,
                 mapping: Mapping[str, str] | None = None, *, month_given: bool = False,
                 source: str | None = None) -> Shape:
    """Tell the input shape from its column names, after the column mapping.

    Rules, in order: a ``count`` column means **counts**; an ``entered_at`` column (with
    ``lead_id`` and ``stage``) means **history**; ``lead_id`` + ``stage`` + ``month``
    (or ``month_given``) means **snapshots**.

    Parameters
    ----------
    columns : sequence of str
        The user's column names.
    spec : FunnelSpec, mapping or path
        The funnel spec (its ``columns`` mapping is applied).
    mapping : mapping, optional
        Extra column mapping, overriding ``spec.columns``.
    month_given : bool
        A month is supplied separately (e.g. ``--month``), so snapshots and counts need
        no ``month`` column.
    source : str, optional
        Name of the source for the error message.

    Returns
    -------
    {"history", "snapshots", "counts"}

    Raises
    ------
    FunnelDataError
        If no shape fits, naming the missing columns and the closest existing ones.

    Examples
    --------
    >>> spec = FunnelSpec.from_dict({"stages": ["NEW"], "won": ["WON"]})
    >>> detect_shape(["opportunity", "stage", "changed_on"], spec,
    ...              {"lead_id": "opportunity", "entered_at": "changed_on"})
    'history'
    """
    spec = FunnelSpec.load(spec)
    cols = [str(c) for c in columns]
    explicit = resolve_mapping(spec, mapping)
    label = source or "input"
    present: dict[str, str] = {}
    for canon in ("lead_id", "stage", "entered_at", "month", "count"):
        col, was_explicit = _locate(cols, explicit, canon)
        if col is not None:
            present[canon] = col
        elif was_explicit and mapping and canon in mapping:
            raise _missing_mapped(label, canon, explicit[canon], cols, "mapping argument / --map")
    has_month = "month" in present or month_given

    def fits(have: set[str]) -> bool:
        month_ok = "month" in have or month_given
        return bool(({"count", "stage"} <= have and month_ok) or {"lead_id", "stage", "entered_at"} <= have
                    or ({"lead_id", "stage"} <= have and month_ok))

    mapped_missing = [c for c in ("lead_id", "stage", "entered_at", "month", "count")
                      if c in explicit and c not in present]
    if present and not fits(set(present)) and mapped_missing and fits(set(present) | set(mapped_missing)):
        # the explicit mapping to absent columns is what keeps the shape from fitting
        raise _missing_mapped(label, mapped_missing[0], explicit[mapped_missing[0]], cols, "spec 'columns'")
    if "count" in present and "stage" in present and has_month:
        return "counts"
    if all(c in present for c in ("lead_id", "stage", "entered_at")):
        return "history"
    if "lead_id" in present and "stage" in present and has_month:
        return "snapshots"
    lines = []
    for shape, needs in _NEEDS.items():
        miss = [n for n in needs if n not in present and not (n == "month" and month_given)]
        hints = []
        for n in miss:
            wanted = explicit.get(n, n)
            near = difflib.get_close_matches(wanted, cols, n=1, cutoff=0.5)
            hints.append(f"{n}" + (f" (mapped to {wanted!r})" if n in explicit else "")
                         + (f" -- closest column {near[0]!r}" if near else ""))
        lines.append(f"{shape} needs {list(needs)}, missing: {', '.join(hints)}")
    raise FunnelDataError(
        f"{label}: cannot tell the input shape from its columns {cols}:\n  - " + "\n  - ".join(lines)
        + "\nFix: rename the columns, or map them in the spec's 'columns' or with "
          "--map lead_id=<col>,stage=<col>,entered_at=<col> (snapshots and counts may use "
          "--month YYYY-MM instead of a month column).")


# ====================================================================== validation engine
@dataclass
class _Ctx:
    con: duckdb.DuckDBPyConnection
    inp: _Input
    spec: FunnelSpec
    cols: dict[str, str]          # canonical -> user column, for those present
    problems: list[str] = field(default_factory=list)

    def desc(self, canon: str) -> str:
        col = self.cols.get(canon, canon)
        return f"column {col!r}" + (f" (= {canon})" if col != canon else "")


def _select_columns(inp: _Input, spec: FunnelSpec, mapping: Mapping[str, str] | None,
                    required: Sequence[str], optional: Sequence[str]) -> dict[str, str]:
    explicit = resolve_mapping(spec, mapping)
    out: dict[str, str] = {}
    missing: list[str] = []
    for canon in list(required) + list(optional) + list(spec.attributes):
        col, was_explicit = _locate(inp.columns, explicit, canon)
        if col is not None:
            out[canon] = col
        elif was_explicit:
            where = "mapping argument / --map" if mapping and canon in mapping else "spec 'columns'"
            if canon == "value" and spec.value and not (mapping and "value" in mapping) \
                    and "value" not in spec.columns:
                where = "spec 'value'"
            raise _missing_mapped(inp.label, canon, explicit[canon], inp.columns, where)
        elif canon in required or canon in spec.attributes:
            missing.append(canon)
    if missing:
        parts = []
        for m in missing:
            near = _closest(m, inp.columns)
            kind = "attribute " if m in spec.attributes and m not in required else ""
            parts.append(f"{kind}{m!r}" + (f" ({near.strip()})" if near else ""))
        fix = ("map them to your column names in the spec's 'columns' or with --map "
               + ",".join(f"{m}=<column>" for m in missing))
        if any(m in spec.attributes for m in missing):
            fix += ", or remove missing attributes from the spec's 'attributes'"
        raise FunnelDataError(f"{inp.label}: missing column(s) {', '.join(parts)}. Available columns: "
                              f"{inp.columns}. Fix: {fix}.")
    return out


def _n(count: int, one: str, many: str) -> str:
    """``count`` and the phrase that agrees with it: ``1 row has`` / ``2 rows have``."""
    return f"{count} {one if count == 1 else many}"


def _check(ctx: _Ctx, canon: str, cond: str, what: tuple[str, str], fix: str,
           show: str | None = None) -> None:
    """Record a problem if ``cond`` holds for any row of table ``t``; ``what`` is (one, many)."""
    count = ctx.con.execute(f"SELECT count(*) FROM t WHERE {cond}").fetchall()[0][0]
    if not count:
        return
    show = show or "NULL"
    rows = ctx.con.execute(f"SELECT _row, {show} FROM t WHERE {cond} ORDER BY _row LIMIT {_MAX_SHOWN}").fetchall()
    shown = ", ".join(f"row {r}" + (f": {_short(v)}" if v is not None else "") for r, v in rows)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    ctx.problems.append(f"{ctx.desc(canon)}: {_n(count, *what)} -- {shown}{more} "
                        f"({ctx.inp.row_note}). Fix: {fix}")


def _raise_problems(ctx: _Ctx) -> None:
    if not ctx.problems:
        return
    if len(ctx.problems) == 1:
        raise FunnelDataError(f"{ctx.inp.label}: {ctx.problems[0]}")
    raise FunnelDataError(f"{ctx.inp.label}: {len(ctx.problems)} problems:\n  - " + "\n  - ".join(ctx.problems))


def _raw(ctx: _Ctx, canon: str) -> str:
    return f"NULLIF(trim({ctx.inp.internal[ctx.cols[canon]]}), '')"


_DATE_FIX = ("write dates in ISO 8601 form, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS "
             "(e.g. 2024-03-31 14:05:00)")
_MONTH_SQL = ("CASE WHEN regexp_full_match(m_raw, '\\d{4}-\\d{2}') THEN try_cast(m_raw || '-01' AS TIMESTAMP) "
              "WHEN regexp_full_match(m_raw, '\\d{4}-\\d{2}-\\d{2}([ T].*)?') "
              "THEN date_trunc('month', try_cast(m_raw AS TIMESTAMP)) END")


def _materialise(ctx: _Ctx, select: list[str]) -> int:
    """Create table ``t`` (with ``_row``) from ``src``; return the row count."""
    con = ctx.con
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE t0 AS SELECT " + ", ".join(select) + " FROM src")
    except duckdb.Error as exc:
        if "Invalid unicode" in str(exc) and ctx.inp.path is not None:
            raise _encoding_problem(ctx.inp.path, ctx.inp.label, ctx.inp.encoding) from None
        raise translate_read_error(exc, ctx.inp) from None
    # rowid follows the file order (DuckDB preserves insertion order): no second copy needed
    con.execute("CREATE OR REPLACE TEMP VIEW t AS SELECT rowid + 1 AS _row, * FROM t0")
    n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    if n == 0:
        raise FunnelDataError(f"{ctx.inp.label}: the file has a header but no data rows (columns: "
                              f"{ctx.inp.columns}). Fix: export the data again, with rows.")
    return n


def _codes_table(ctx: _Ctx) -> None:
    spec = ctx.spec
    k = spec.n_stages
    rows = [(c, i) for i, c in enumerate(spec.codes)] + [(c, k) for c in spec.won + spec.lost]
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE codes (code VARCHAR, rk INTEGER)")
    ctx.con.executemany("INSERT INTO codes VALUES (?, ?)", rows)


def _check_unknown_stages(ctx: _Ctx) -> None:
    rows = ctx.con.execute(
        "SELECT stage, count(*) AS n, min(_row) AS r FROM t WHERE stage IS NOT NULL AND stage NOT IN "
        "(SELECT code FROM codes) GROUP BY stage ORDER BY r").fetchall()
    if not rows:
        return
    declared = list(ctx.spec.all_codes)
    total = sum(r[1] for r in rows)
    listed = rows[:50]
    vals = ", ".join(f"{v!r} ({_n(n, 'row', 'rows')}, first row {r})" for v, n, r in listed)
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
        f"ORDER BY _row LIMIT {_MAX_SHOWN}").fetchall()
    ctx.problems.append(
        f"{ctx.desc('stage')}: {_n(total, 'row has', 'rows have')} {len(rows)} status code(s) not "
        f"declared in the spec: {vals}. First rows: {', '.join(str(r[0]) for r in first)} "
        f"({ctx.inp.row_note}). Declared codes: {declared}.{hint} Fix: add the codes to the spec's "
        "stages, won or lost lists, or correct the data (codes are case-sensitive).")


def _check_common(ctx: _Ctx, has_lead: bool) -> None:
    if has_lead:
        _check(ctx, "lead_id", "lead_id IS NULL",
               ("row has a blank lead id", "rows have a blank lead id"),
               "give every row a lead id, or drop those rows")
    _check(ctx, "stage", "stage IS NULL", ("row has a blank stage", "rows have a blank stage"),
           "give every row a status code, or drop those rows")
    _codes_table(ctx)
    _check_unknown_stages(ctx)
    if "value" in ctx.cols:
        _check(ctx, "value", "value_raw IS NOT NULL AND value IS NULL",
               # singular not fixed: tests/test_bad_input.py (non_numeric_value) pins "not numbers"
               ("values are not numbers", "values are not numbers"),
               "write plain numbers with a '.' decimal point and no currency sign or thousands "
               "separator (e.g. 12500.50)", show="value_raw")


def _month_select(ctx: _Ctx, month: pd.Timestamp | None) -> list[str]:
    if "month" in ctx.cols:
        raw = _raw(ctx, "month")
    elif month is None:
        raise FunnelDataError(
            f"{ctx.inp.label}: no month column (columns: {ctx.inp.columns}). Fix: add a month column "
            "(YYYY-MM), map one with --map month=<column>, or pass the month of the whole file with "
            "month='YYYY-MM' (CLI: --month YYYY-MM).")
    else:
        raw = _lit(month.strftime("%Y-%m"))
    return [f"{raw} AS m_raw", f"{_MONTH_SQL.replace('m_raw', f'({raw})')} AS month"]


def _check_month(ctx: _Ctx, month: pd.Timestamp | None, today: _dt.date) -> None:
    _check(ctx, "month", "m_raw IS NULL", ("row has no month", "rows have no month"),
           "fill in the month (YYYY-MM) of every row, or drop those rows")
    _check(ctx, "month", "m_raw IS NOT NULL AND month IS NULL",
           ("month is not in YYYY-MM form", "months are not in YYYY-MM form"),
           "write months as YYYY-MM, e.g. 2024-03 (an ISO date such as 2024-03-31 also works)",
           show="m_raw")
    this_month = _dt.date(today.year, today.month, 1).isoformat()
    _check(ctx, "month", f"month > TIMESTAMP '{this_month}'",
           (f"month is in the future (after {today:%Y-%m})", f"months are in the future (after {today:%Y-%m})"),
           "correct the months; data cannot describe months that have not started", show="m_raw")
    _check(ctx, "month", f"month < TIMESTAMP '{_MIN_DATE}'", ("month is before 1900", "months are before 1900"),
           "correct the years (likely typos)", show="m_raw")
    if month is not None and "month" in ctx.cols:
        _check(ctx, "month", f"month IS NOT NULL AND month <> TIMESTAMP '{month:%Y-%m-%d}'",
               (f"row is not in the given month {month:%Y-%m}", f"rows are not in the given month {month:%Y-%m}"),
               "drop month= / --month to use the file's month column, or pass the month the "
               "file contains", show="m_raw")


def _warn_backwards(ctx: _Ctx, time_col: str, table: str) -> None:
    """FunnelWarning for leads that move backwards in the funnel (never an error)."""
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
        FunnelWarning, stacklevel=4)


def canonical_dtypes(df: pd.DataFrame, str_cols: Sequence[str],
                     ts_cols: Sequence[str] = ("entered_at", "month")) -> pd.DataFrame:
    """Give a canonical table its dtypes in place: strings, ``datetime64[ns]`` times,
    float ``value`` and int64 ``count`` (columns that are absent are skipped)."""
    for c in str_cols:
        if c in df.columns:
            df[c] = df[c].astype("str")
    for c in ts_cols:
        if c in df.columns:
            df[c] = df[c].astype("datetime64[ns]")
    if "value" in df.columns:
        df["value"] = df["value"].astype("float64")
    if "count" in df.columns:
        df["count"] = df["count"].astype("int64")
    return df


def _finish(ctx: _Ctx, sql: str, str_cols: Sequence[str], ts_cols: Sequence[str]) -> pd.DataFrame:
    df = ctx.con.sql(sql).to_arrow_table().to_pandas()  # arrow: ~2x faster than .df()
    return canonical_dtypes(df, str_cols, ts_cols)


def _attr_select(ctx: _Ctx) -> list[str]:
    return [f"{_raw(ctx, a)} AS {_q(a)}" for a in ctx.spec.attributes]


def _value_select(ctx: _Ctx) -> list[str]:
    if "value" not in ctx.cols:
        return []
    return [f"{_raw(ctx, 'value')} AS value_raw", f"try_cast({_raw(ctx, 'value')} AS DOUBLE) AS value"]


def _run(kind: Shape, source: Any, spec: Any, mapping: Mapping[str, str] | None,
         month: Any, delimiter: str | None, encoding: str | None, today: _dt.date | None) -> pd.DataFrame:
    spec = FunnelSpec.load(spec)
    today = today or _dt.date.today()
    month_ts = parse_month(month, what="month") if month is not None else None
    with duckdb.connect(":memory:") as con:
        inp = _open(con, source, delimiter, encoding)
        try:
            return _read_shape(kind, con, inp, spec, mapping, month_ts, today)
        finally:
            for f in inp.tmpfiles:
                try:
                    os.unlink(f)
                except OSError:
                    pass


def _read_shape(kind: Shape, con: duckdb.DuckDBPyConnection, inp: _Input, spec: FunnelSpec,
                mapping: Mapping[str, str] | None, month: pd.Timestamp | None,
                today: _dt.date) -> pd.DataFrame:
    attrs = [_q(a) for a in spec.attributes]
    if kind == "history":
        cols = _select_columns(inp, spec, mapping, ("lead_id", "stage", "entered_at"), ("value",))
        ctx = _Ctx(con, inp, spec, cols)
        sel = [f"{_raw(ctx, 'lead_id')} AS lead_id", f"{_raw(ctx, 'stage')} AS stage",
               f"{_raw(ctx, 'entered_at')} AS entered_raw",
               f"try_cast({_raw(ctx, 'entered_at')} AS TIMESTAMP) AS entered_at"]
        _materialise(ctx, sel + _attr_select(ctx) + _value_select(ctx))
        _check_common(ctx, has_lead=True)
        _check(ctx, "entered_at", "entered_raw IS NULL", ("row has no date", "rows have no date"),
               "fill in the date every stage was entered, or drop those rows")
        _check(ctx, "entered_at", "entered_raw IS NOT NULL AND entered_at IS NULL",
               ("value is not a date", "values are not dates"), _DATE_FIX, show="entered_raw")
        _check(ctx, "entered_at", f"CAST(entered_at AS DATE) > DATE '{today.isoformat()}'",
               (f"date is in the future (after today, {today.isoformat()})",
                f"dates are in the future (after today, {today.isoformat()})"),
               "correct the dates (a day/month swap or a wrong year?)", show="entered_raw")
        _check(ctx, "entered_at", f"entered_at < TIMESTAMP '{_MIN_DATE}'",
               ("date is before 1900", "dates are before 1900"),
               "correct the years (likely typos, e.g. 0202 for 2020)", show="entered_raw")
        _raise_problems(ctx)
        dup = con.execute("SELECT count(*) - count(DISTINCT (lead_id, stage, entered_at)) FROM t").fetchall()[0][0]
        if dup:
            warnings.warn(f"{inp.label}: {dup} exact duplicate row(s) (same lead, stage and "
                          "date) dropped.", FunnelWarning, stacklevel=4)
        con.execute("CREATE OR REPLACE TEMP TABLE h AS SELECT t.* FROM t QUALIFY row_number() OVER "
                    "(PARTITION BY lead_id, stage, entered_at ORDER BY _row) = 1")
        _warn_backwards(ctx, "entered_at", "h")
        out = ["lead_id", "stage", "entered_at"] + attrs + (["value"] if "value" in cols else [])
        return _finish(ctx, f"SELECT {', '.join(out)} FROM h JOIN codes ON stage = code "
                            "ORDER BY lead_id, entered_at, rk, _row",
                       ["lead_id", "stage", *spec.attributes], ["entered_at"])

    if kind == "snapshots":
        cols = _select_columns(inp, spec, mapping, ("lead_id", "stage"), ("month", "value"))
        ctx = _Ctx(con, inp, spec, cols)
        sel = _month_select(ctx, month) + [f"{_raw(ctx, 'lead_id')} AS lead_id",
                                           f"{_raw(ctx, 'stage')} AS stage"]
        _materialise(ctx, sel + _attr_select(ctx) + _value_select(ctx))
        _check_month(ctx, month, today)
        _check_common(ctx, has_lead=True)
        _raise_problems(ctx)
        conflicts = con.execute(
            "SELECT lead_id, month, list(DISTINCT stage ORDER BY stage), list(_row ORDER BY _row) FROM t "
            "GROUP BY lead_id, month HAVING count(DISTINCT stage) > 1 ORDER BY min(_row)").fetchall()
        if conflicts:
            shown = "; ".join(f"lead {lid!r} in {m:%Y-%m}: stages {st} at rows {rows[:_MAX_SHOWN]}"
                              for lid, m, st, rows in conflicts[:_MAX_SHOWN])
            more = f"; and {len(conflicts) - _MAX_SHOWN} more" if len(conflicts) > _MAX_SHOWN else ""
            raise FunnelDataError(
                f"{inp.label}: {ctx.desc('lead_id')} and {ctx.desc('month')}: {len(conflicts)} "
                f"(lead, month) pair(s) have rows with conflicting stages -- {shown}{more} "
                f"({inp.row_note}). A snapshot holds one status per lead and month. Fix: keep "
                "only the status at the end of each month (the last change).")
        dup = con.execute("SELECT count(*) - count(DISTINCT (lead_id, month)) FROM t").fetchall()[0][0]
        if dup:
            warnings.warn(f"{inp.label}: {dup} duplicate (lead, month) row(s) with the same stage "
                          "dropped (the first row is kept).", FunnelWarning, stacklevel=4)
        con.execute("CREATE OR REPLACE TEMP TABLE s AS SELECT t.* FROM t QUALIFY row_number() OVER "
                    "(PARTITION BY lead_id, month ORDER BY _row) = 1")
        _warn_backwards(ctx, "month", "s")
        out = ["month", "lead_id", "stage"] + attrs + (["value"] if "value" in cols else [])
        return _finish(ctx, f"SELECT {', '.join(out)} FROM s ORDER BY lead_id, month",
                       ["lead_id", "stage", *spec.attributes], ["month"])

    # counts
    cols = _select_columns(inp, spec, mapping, ("stage", "count"), ("month",))
    ctx = _Ctx(con, inp, spec, cols)
    sel = _month_select(ctx, month) + [f"{_raw(ctx, 'stage')} AS stage",
                                       f"{_raw(ctx, 'count')} AS count_raw",
                                       f"try_cast({_raw(ctx, 'count')} AS DOUBLE) AS count_num"]
    _materialise(ctx, sel + _attr_select(ctx))
    _check_month(ctx, month, today)
    _check_common(ctx, has_lead=False)
    _check(ctx, "count", "count_raw IS NULL", ("row has no count", "rows have no count"),
           "fill in the count (0 if none), or drop those rows")
    _check(ctx, "count", "count_raw IS NOT NULL AND (count_num IS NULL OR isnan(count_num) OR "
           "isinf(count_num) OR count_num <> round(count_num))",
           ("count is not a whole number", "counts are not whole numbers"),
           "write counts as whole numbers without decimals or thousands separators (e.g. 1250)",
           show="count_raw")
    _check(ctx, "count", "count_num < 0", ("count is negative", "counts are negative"),
           "counts cannot be negative; correct or drop those rows", show="count_raw")
    _raise_problems(ctx)
    keys = ["month", "stage"] + attrs
    dup = con.execute(f"SELECT count(*) - count(DISTINCT ({', '.join(keys)})) FROM t").fetchall()[0][0]
    if dup:
        warnings.warn(f"{inp.label}: {dup} row(s) repeat a (month, stage"
                      f"{', ' if attrs else ''}{', '.join(spec.attributes)}) already seen; their "
                      "counts are summed.", FunnelWarning, stacklevel=4)
    return _finish(ctx, f"SELECT {', '.join(keys)}, CAST(sum(count_num) AS BIGINT) AS count FROM t "
                        f"JOIN codes ON stage = code GROUP BY {', '.join(keys)}, rk "
                        f"ORDER BY month, rk, {', '.join(attrs) or 'stage'}",
                   ["stage", *spec.attributes], ["month"])


# ====================================================================== public readers
def read_history(source: Any, spec: FunnelSpec | Mapping[str, Any] | str | Path, *,
                 mapping: Mapping[str, str] | None = None, delimiter: str | None = None,
                 encoding: str | None = None, today: _dt.date | None = None) -> pd.DataFrame:
    """Read a stage history (one row per stage change).

    Parameters
    ----------
    source : path, ``"file.duckdb::table"`` or DataFrame
        CSV, Parquet or DuckDB table (see :mod:`funnel_models.data.sources`).
    spec : FunnelSpec, mapping or path to YAML
        The funnel spec: status codes, column mapping, attributes.
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
        ``lead_id`` (str), ``stage`` (str), ``entered_at`` (datetime64[ns]), the spec's
        attributes (str), and ``value`` (float64) if the source has one; sorted by
        ``lead_id``, ``entered_at``. Exact duplicate rows are dropped.

    Raises
    ------
    FunnelDataError
        On any malformed input, with one message naming the file, column, rows and fix.

    Warns
    -----
    FunnelWarning
        Leads that move backwards, stages entered before the lead's first stage,
        duplicate rows.

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


def read_snapshots(source: Any, spec: FunnelSpec | Mapping[str, Any] | str | Path, *,
                   mapping: Mapping[str, str] | None = None, month: Any = None,
                   delimiter: str | None = None, encoding: str | None = None,
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


def read_counts(source: Any, spec: FunnelSpec | Mapping[str, Any] | str | Path, *,
                mapping: Mapping[str, str] | None = None, month: Any = None,
                delimiter: str | None = None, encoding: str | None = None,
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


def _columns_of(source: Any, delimiter: str | None, encoding: str | None) -> tuple[str, list[str]]:
    with duckdb.connect(":memory:") as con:
        inp = _open(con, source, delimiter, encoding)
        for f in inp.tmpfiles:
            os.unlink(f)
        return inp.label, inp.columns


def read_any(source: Any, spec: FunnelSpec | Mapping[str, Any] | str | Path,
             shape: Shape | None = None, mapping: Mapping[str, str] | None = None, *,
             month: Any = None, delimiter: str | None = None, encoding: str | None = None,
             today: _dt.date | None = None) -> tuple[Shape, pd.DataFrame]:
    """Read any of the three shapes, detecting it from the columns unless given.

    Parameters
    ----------
    source, spec, mapping, delimiter, encoding, today
        As in :func:`read_history`.
    shape : {"history", "snapshots", "counts"}, optional
        Force the shape instead of detecting it (:func:`detect_shape`).
    month : str, optional
        For snapshots and counts, as in :func:`read_snapshots`. Ignored for history
        (the store uses it to choose month-replace; see :class:`funnel_models.data.store.Store`).

    Returns
    -------
    (shape, DataFrame)

    Raises
    ------
    FunnelDataError
        If the shape cannot be told or the data is malformed.
    """
    spec = FunnelSpec.load(spec)
    if shape is None:
        label, columns = _columns_of(source, delimiter, encoding)
        shape = detect_shape(columns, spec, mapping, month_given=month is not None, source=label)
    elif shape not in SHAPES:
        raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(SHAPES)}.")
    if shape == "history":
        return shape, read_history(source, spec, mapping=mapping, delimiter=delimiter,
                                   encoding=encoding, today=today)
    reader = read_snapshots if shape == "snapshots" else read_counts
    return shape, reader(source, spec, mapping=mapping, month=month, delimiter=delimiter,
                         encoding=encoding, today=today)
