"""A DuckDB file that keeps ingested stage histories, snapshots and counts.

Tables (created on first use)
-----------------------------
``history``
    ``lead_id``, ``stage``, ``entered_at`` (TIMESTAMP), ``value`` (DOUBLE), attributes.
``snapshots``
    ``month`` (TIMESTAMP, first of month), ``lead_id``, ``stage``, ``value``, attributes.
``counts``
    ``month``, ``stage``, ``count`` (BIGINT), attributes.
``funnel_meta``
    Per table: the attribute columns (JSON list) and whether a value column was ever
    ingested. Attributes are stored as VARCHAR; a later ingest with new attributes
    adds columns (NULL for earlier rows).
``ingests``
    The log: ``id``, ``shape``, ``source``, ``mode``, ``months``, ``rows``,
    ``replaced_rows``, ``ingested_at``.

Replace rules (re-ingesting never duplicates)
---------------------------------------------
* **snapshots** and **counts**: the key is the month. Ingesting replaces every stored
  row of the months present in the data.
* **history**, default (``month=None``): the key is the lead. Ingesting replaces every
  stored row of the lead ids present in the data (an export holds each lead's full
  history). Re-ingesting the same file is a no-op; an updated export updates its leads.
* **history** with ``month="YYYY-MM"``: the key is the month of ``entered_at``. Every
  row of the data must be entered in that month; the stored rows entered in that month
  (of any lead) are replaced. Use it for monthly "changes in month M" exports.

Atomicity
---------
One ingest is one DuckDB transaction (``BEGIN`` ... ``COMMIT``, ``ROLLBACK`` on any
error). A failure, or the process being killed mid-ingest, leaves the previous state
readable and unchanged. Input is validated before the store file is opened, so bad
input never touches the file.

Test hooks (environment variables, used by the test-suite only):
``FUNNEL_TEST_PAUSE_IN_INGEST=<seconds>`` prints ``FUNNEL_TEST_PAUSED`` to stderr and
sleeps inside the transaction after the delete and insert, before ``COMMIT``;
``FUNNEL_TEST_FAIL_IN_INGEST=1`` raises :class:`RuntimeError` at the same point.

Connections are opened per call and closed at once (DuckDB allows one writing process
per file); a store held open elsewhere raises a clear error.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import duckdb
import pandas as pd

from ..errors import FunnelDataError
from .readers import SHAPES, canonical_dtypes, parse_month

__all__ = ["Store", "IngestReport", "DEFAULT_STORE"]

#: Default store file name, in the current directory.
DEFAULT_STORE = "funnel.duckdb"

_CANON: dict[str, tuple[tuple[str, str], ...]] = {
    "history": (("lead_id", "VARCHAR"), ("stage", "VARCHAR"), ("entered_at", "TIMESTAMP"),
                ("value", "DOUBLE")),
    "snapshots": (("month", "TIMESTAMP"), ("lead_id", "VARCHAR"), ("stage", "VARCHAR"),
                  ("value", "DOUBLE")),
    "counts": (("month", "TIMESTAMP"), ("stage", "VARCHAR"), ("count", "BIGINT")),
}
_REQUIRED = {"history": ("lead_id", "stage", "entered_at"),
             "snapshots": ("month", "lead_id", "stage"),
             "counts": ("month", "stage", "count")}
_ORDER = {"history": "lead_id, entered_at", "snapshots": "lead_id, month", "counts": "month, stage"}
_CANONICAL_NAMES = {"lead_id", "stage", "entered_at", "month", "count", "value"}


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


@dataclass
class IngestReport:
    """What one ingest stored.

    Attributes
    ----------
    ingest_id : int
        Id in the ``ingests`` log.
    shape : str
        ``"history"``, ``"snapshots"`` or ``"counts"``.
    source : str or None
        Where the data came from (file name).
    mode : str
        ``"replace-leads"`` or ``"replace-months"``.
    months : list of str
        The months (``YYYY-MM``) the data covers.
    rows : int
        Rows stored.
    leads : int or None
        Distinct leads (None for counts).
    replaced_rows : int
        Previously stored rows deleted by this ingest.
    stages : dict
        Rows (or, for counts, the summed count) per stage code.
    warnings : list of str
        Warnings raised while reading (filled in by the caller).
    """

    ingest_id: int
    shape: str
    source: str | None
    mode: str
    months: list[str]
    rows: int
    leads: int | None
    replaced_rows: int
    stages: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few human-readable lines."""
        months = (f"{self.months[0]} .. {self.months[-1]} ({len(self.months)} months)"
                  if len(self.months) > 3 else ", ".join(self.months) or "-")
        lines = [f"ingested {self.rows:,} {self.shape} rows from {self.source or '<DataFrame>'} "
                 f"(ingest #{self.ingest_id}, {self.mode}, replaced {self.replaced_rows:,} stored rows)",
                 f"  months: {months}"]
        if self.leads is not None:
            lines.append(f"  leads:  {self.leads:,}")
        lines.append("  stages: " + ", ".join(f"{k} {v:,}" for k, v in self.stages.items()))
        lines.append(f"  warnings: {len(self.warnings)}")
        lines += [f"    - {w}" for w in self.warnings]
        return "\n".join(lines)


class Store:
    """Ingested funnel data in one DuckDB file.

    Parameters
    ----------
    path : str or path-like, default ``"funnel.duckdb"``
        The store file; created on the first ingest.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> store = Store(Path(tempfile.mkdtemp()) / "funnel.duckdb")
    >>> df = pd.DataFrame({"lead_id": ["a"], "stage": ["NEW"],
    ...                    "entered_at": pd.to_datetime(["2024-01-03"])})
    >>> store.ingest(df, "history").rows
    1
    >>> store.read("history")["lead_id"].tolist()
    ['a']
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connection
    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.path.is_dir():
            raise FunnelDataError(f"store {self.path}: is a directory; pass a file path such as "
                                  f"{self.path / DEFAULT_STORE}.")
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            if "lock" in msg.lower():
                raise FunnelDataError(f"store {self.path}: in use by another process ({msg}). Fix: "
                                      "close the notebook or command that has it open, then retry.") from None
            raise FunnelDataError(f"store {self.path}: cannot open it as a DuckDB database ({msg}). "
                                  "Fix: pass a store created by 'funnel ingest', or a new file name.") from None
        try:
            yield con
        finally:
            con.close()

    @staticmethod
    def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
        return {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main'").fetchall()}

    @staticmethod
    def _meta(con: duckdb.DuckDBPyConnection, shape: str) -> tuple[list[str], bool]:
        rows = con.execute("SELECT attributes, has_value FROM funnel_meta WHERE table_name = ?",
                           [shape]).fetchall()
        row = rows[0] if rows else None
        return (json.loads(row[0]), bool(row[1])) if row else ([], False)

    # ------------------------------------------------------------------ ingest
    def _prepare(self, df: pd.DataFrame, shape: str, month: Any) -> tuple[pd.DataFrame, list[str], str]:
        """Validate and normalise ``df``; return (df, attributes, mode). No store access."""
        if shape not in SHAPES:
            raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(SHAPES)}.")
        if not isinstance(df, pd.DataFrame):
            raise FunnelDataError(f"ingest expects a pandas DataFrame, got {type(df).__name__}.")
        df = df.copy()
        month_ts = parse_month(month, what="month") if month is not None else None
        if shape != "history" and "month" not in df.columns and month_ts is not None:
            df["month"] = month_ts
        missing = [c for c in _REQUIRED[shape] if c not in df.columns]
        if missing:
            raise FunnelDataError(f"ingest of {shape}: the data has no column(s) {missing} (columns: "
                                  f"{list(df.columns)}). Read the file with funnel_models.data.readers "
                                  "first, or pass month= for a file without a month column.")
        if df.empty:
            raise FunnelDataError(f"ingest of {shape}: the data has no rows; nothing to store.")
        attrs = [str(c) for c in df.columns if c not in _CANONICAL_NAMES]
        df.columns = [str(c) for c in df.columns]
        for c in ["lead_id", "stage", *attrs]:
            if c in df.columns:
                df[c] = df[c].astype("str").where(df[c].notna(), None)
        time_col = "entered_at" if shape == "history" else "month"
        try:
            df[time_col] = pd.to_datetime(df[time_col]).astype("datetime64[ns]")
        except (ValueError, TypeError) as exc:
            raise FunnelDataError(f"ingest of {shape}: column {time_col!r} is not datetimes ({exc}).") from None
        if df[time_col].isna().any() or df["stage"].isna().any() or \
                ("lead_id" in df.columns and df["lead_id"].isna().any()):
            raise FunnelDataError(f"ingest of {shape}: blank {time_col}, stage or lead_id values; "
                                  "read the file with funnel_models.data.readers to locate them.")
        if shape != "history":
            df["month"] = df["month"].dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")
        if shape == "counts":
            cnt = pd.to_numeric(df["count"], errors="coerce")
            if cnt.isna().any() or (cnt < 0).any() or (cnt != cnt.round()).any():
                raise FunnelDataError("ingest of counts: 'count' must hold whole numbers >= 0.")
            df["count"] = cnt.astype("int64")
        if "value" in df.columns:
            df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
        mode = "replace-months"
        if month_ts is not None:
            key = df[time_col].dt.to_period("M").dt.to_timestamp()
            outside = int((key != month_ts).sum())
            if outside:
                raise FunnelDataError(
                    f"ingest of {shape} with month {month_ts:%Y-%m}: {outside} row(s) are in other "
                    f"months ({sorted(key[key != month_ts].dt.strftime('%Y-%m').unique())[:5]}). "
                    "Fix: drop --month to replace by the data's own months"
                    f"{' (for history: by lead)' if shape == 'history' else ''}, or filter the file.")
        elif shape == "history":
            mode = "replace-leads"
        keys = {"history": ["lead_id", "stage", "entered_at"], "snapshots": ["lead_id", "month"],
                "counts": ["month", "stage", *attrs]}[shape]
        dup = df.duplicated(keys)
        if dup.any():
            first = df[dup].head(3)[keys].astype(str).to_dict("records")
            raise FunnelDataError(f"ingest of {shape}: {int(dup.sum())} row(s) repeat the key {keys}, "
                                  f"e.g. {first}. The store keeps one row per key. Fix: "
                                  "deduplicate (funnel_models.data.readers does this for files).")
        return df, attrs, mode

    def ingest(self, df: pd.DataFrame, shape: str, *, month: Any = None,
               source: str | None = None) -> IngestReport:
        """Store ``df`` in one transaction, replacing what it supersedes.

        Parameters
        ----------
        df : pandas.DataFrame
            A canonical table (from :mod:`funnel_models.data.readers` or ``derive``). Columns
            other than the canonical ones are stored as attributes (VARCHAR).
        shape : {"history", "snapshots", "counts"}
            Which table.
        month : str, optional
            ``"YYYY-MM"``. Snapshots/counts without a ``month`` column get this month;
            with one, every row must be in it. For history it selects month-replace
            (see the module docstring).
        source : str, optional
            Recorded in the ``ingests`` log.

        Returns
        -------
        IngestReport

        Raises
        ------
        FunnelDataError
            If the data does not fit (then the store file is not opened), or the store
            cannot be opened or written (then nothing is changed).
        """
        df, attrs, mode = self._prepare(df, shape, month)
        canon = [c for c, _ in _CANON[shape]]
        has_value = "value" in df.columns
        time_col = "entered_at" if shape == "history" else "month"
        months = sorted(df[time_col].dt.strftime("%Y-%m").unique().tolist())
        with self._connect() as con:
            con.register("incoming_df", df)
            con.execute("BEGIN TRANSACTION")
            try:
                replaced = self._write(con, shape, canon, attrs, has_value, mode, months)
                n_rows = con.execute("SELECT count(*) FROM incoming").fetchall()[0][0]
                leads = (None if shape == "counts" else
                         con.execute("SELECT count(DISTINCT lead_id) FROM incoming").fetchall()[0][0])
                agg = "sum(count)" if shape == "counts" else "count(*)"
                stages = dict(con.execute(f"SELECT stage, {agg} FROM incoming GROUP BY stage "
                                          "ORDER BY stage").fetchall())
                ingest_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM ingests").fetchall()[0][0]
                con.execute("INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [ingest_id, shape, source, mode, ",".join(months), n_rows, replaced,
                             _dt.datetime.now().replace(microsecond=0)])
                _test_hooks()
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("DROP TABLE IF EXISTS incoming")
            con.unregister("incoming_df")
        return IngestReport(ingest_id=ingest_id, shape=shape, source=source, mode=mode,
                            months=months, rows=n_rows, leads=leads, replaced_rows=replaced,
                            stages={str(k): int(v) for k, v in stages.items()})

    def _write(self, con: duckdb.DuckDBPyConnection, shape: str, canon: list[str],
               attrs: list[str], has_value: bool, mode: str, months: list[str]) -> int:
        """Inside the transaction: create/extend tables, delete superseded rows, insert."""
        con.execute("CREATE TABLE IF NOT EXISTS funnel_meta (table_name VARCHAR, attributes VARCHAR, "
                    "has_value BOOLEAN)")
        con.execute("CREATE TABLE IF NOT EXISTS ingests (id INTEGER, shape VARCHAR, source VARCHAR, "
                    "mode VARCHAR, months VARCHAR, rows BIGINT, replaced_rows BIGINT, "
                    "ingested_at TIMESTAMP)")
        cols = ", ".join(f"{c} {t}" for c, t in _CANON[shape])
        con.execute(f"CREATE TABLE IF NOT EXISTS {shape} ({cols})")
        old_attrs, old_value = self._meta(con, shape)
        for a in attrs:
            if a not in old_attrs:
                con.execute(f"ALTER TABLE {shape} ADD COLUMN {_q(a)} VARCHAR")
        all_attrs = old_attrs + [a for a in attrs if a not in old_attrs]
        con.execute("DELETE FROM funnel_meta WHERE table_name = ?", [shape])
        con.execute("INSERT INTO funnel_meta VALUES (?, ?, ?)",
                    [shape, json.dumps(all_attrs), bool(old_value or has_value)])
        select = []
        for c, t in _CANON[shape]:
            select.append(f"CAST({c} AS {t}) AS {c}" if c != "value" or has_value
                          else "CAST(NULL AS DOUBLE) AS value")
        select += [f"CAST({_q(a)} AS VARCHAR) AS {_q(a)}" for a in attrs]
        con.execute(f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT {', '.join(select)} FROM incoming_df")
        if shape == "history" and mode == "replace-leads":
            where = "lead_id IN (SELECT DISTINCT lead_id FROM incoming)"
        elif shape == "history":
            where = "strftime(entered_at, '%Y-%m') IN (SELECT unnest(?::VARCHAR[]))"
        else:
            where = "month IN (SELECT DISTINCT month FROM incoming)"
        params = [months] if "?" in where else []
        replaced = con.execute(f"DELETE FROM {shape} WHERE {where}", params).fetchall()[0][0]
        names = canon + attrs
        con.execute(f"INSERT INTO {shape} ({', '.join(_q(n) for n in names)}) "
                    f"SELECT {', '.join(_q(n) for n in names)} FROM incoming")
        return int(replaced)

    # ------------------------------------------------------------------ read
    def read(self, shape: str, *, months: Iterable[Any] | Any | None = None,
             filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Read a stored table as a canonical DataFrame.

        Parameters
        ----------
        shape : {"history", "snapshots", "counts"}
            Which table.
        months : str or iterable of str, optional
            Only these months (``YYYY-MM``); for history, by the month of ``entered_at``.
        filters : mapping, optional
            Column -> value or list of values (equality / membership), e.g.
            ``{"region": ["EU", "US"], "stage": "WON"}``.

        Returns
        -------
        pandas.DataFrame
            The same columns and dtypes as the readers return (``value`` only if one was
            ever ingested), sorted like them.

        Raises
        ------
        FunnelDataError
            If the table was never ingested or a filter names an unknown column.
        """
        if shape not in SHAPES:
            raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(SHAPES)}.")
        if not self.path.exists():
            raise FunnelDataError(f"store {self.path}: no such file. Fix: run 'funnel ingest FILE "
                                  f"--spec SPEC.yaml --store {self.path}' first.")
        with self._connect(read_only=True) as con:
            if shape not in self._tables(con):
                raise FunnelDataError(f"store {self.path}: no {shape} has been ingested yet.")
            attrs, has_value = self._meta(con, shape)
            cols = [c for c, _ in _CANON[shape] if c != "value" or has_value] + attrs
            where, params = [], []
            if months is not None:
                if isinstance(months, (str, pd.Timestamp, _dt.date)):
                    months = [months]
                keys = [parse_month(m, what="months").strftime("%Y-%m") for m in months]
                tcol = "entered_at" if shape == "history" else "month"
                where.append(f"strftime({tcol}, '%Y-%m') IN (SELECT unnest(?::VARCHAR[]))")
                params.append(keys)
            for col, val in (filters or {}).items():
                if col not in cols:
                    raise FunnelDataError(f"store {self.path}: cannot filter {shape} on {col!r}; its "
                                          f"columns are {cols}.")
                vals = list(val) if isinstance(val, (list, tuple, set, frozenset)) else [val]
                where.append(f"CAST({_q(col)} AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))")
                params.append([str(v) for v in vals])
            sql = (f"SELECT {', '.join(_q(c) for c in cols)} FROM {shape}"
                   + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {_ORDER[shape]}")
            df = con.sql(sql, params=params).to_arrow_table().to_pandas()
        return canonical_dtypes(df, ["lead_id", "stage", *attrs])

    def ingests(self) -> pd.DataFrame:
        """The ingest log, oldest first (empty if nothing was ingested)."""
        if not self.path.exists():
            return pd.DataFrame(columns=["id", "shape", "source", "mode", "months", "rows",
                                         "replaced_rows", "ingested_at"])
        with self._connect(read_only=True) as con:
            if "ingests" not in self._tables(con):
                return pd.DataFrame()
            return con.execute("SELECT * FROM ingests ORDER BY id").df()

    def status(self) -> dict[str, Any]:
        """Summarise what is stored.

        Returns
        -------
        dict
            ``{"path", "exists", "ingests", "tables": {shape: {"rows", "leads",
            "months" (list of YYYY-MM), "stages" ({code: rows}), "attributes"}}}``.
        """
        out: dict[str, Any] = {"path": str(self.path), "exists": self.path.exists(),
                               "ingests": 0, "tables": {}}
        if not out["exists"]:
            return out
        with self._connect(read_only=True) as con:
            tables = self._tables(con)
            if "ingests" in tables:
                out["ingests"] = con.execute("SELECT count(*) FROM ingests").fetchall()[0][0]
            for shape in SHAPES:
                if shape not in tables:
                    continue
                attrs, _ = self._meta(con, shape)
                tcol = "entered_at" if shape == "history" else "month"
                leads = "NULL" if shape == "counts" else "count(DISTINCT lead_id)"
                rows, n_leads = con.execute(f"SELECT count(*), {leads} FROM {shape}").fetchall()[0]
                months = [r[0] for r in con.execute(
                    f"SELECT DISTINCT strftime({tcol}, '%Y-%m') AS m FROM {shape} ORDER BY m").fetchall()]
                agg = "sum(count)" if shape == "counts" else "count(*)"
                stages = {s: int(n) for s, n in con.execute(
                    f"SELECT stage, {agg} FROM {shape} GROUP BY stage ORDER BY stage").fetchall()}
                out["tables"][shape] = {"rows": int(rows), "leads": n_leads, "months": months,
                                        "stages": stages, "attributes": attrs}
        return out


def _test_hooks() -> None:
    """Fault injection for the atomicity tests (see the module docstring)."""
    pause = os.environ.get("FUNNEL_TEST_PAUSE_IN_INGEST")
    if pause:
        print("FUNNEL_TEST_PAUSED", file=sys.stderr, flush=True)
        time.sleep(float(pause))
    if os.environ.get("FUNNEL_TEST_FAIL_IN_INGEST"):
        raise RuntimeError("FUNNEL_TEST_FAIL_IN_INGEST: simulated failure inside the ingest transaction")
