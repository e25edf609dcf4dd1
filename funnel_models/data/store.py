"""A DuckDB file that keeps ingested stage histories, snapshots and counts, and their spec.

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
``funnel_spec``
    The funnel spec (JSON) recorded by the first ingest that passed one: stages, won and
    lost codes, ``stale_after``, ``timezone`` (not the column mapping, which describes a
    source file: stored tables are canonical). A later ingest with a different funnel is
    refused; :meth:`Store.spec` returns it, so a store alone is enough to report from.
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
readable and unchanged. Input is validated (against its contract,
:mod:`funnel_models.data.schemas`) before the store file is opened, so bad input never
touches the file.

Busy stores
-----------
DuckDB allows one writing process per file, and no reader beside it. Connections are
opened per call and closed at once; a store held open by another process raises
:class:`~funnel_models.errors.StoreBusyError` at once, or after ``wait`` seconds of
retrying (``Store(path, wait=30)``; CLI ``--wait 30``).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import duckdb
import pandas as pd

from ..errors import FunnelDataError, SpecError, StoreBusyError
from .columns import NEEDS, SHAPES, Shape
from .dates import month_start, parse_month
from .schemas import canonical_dtypes, coerce_table, schema_for, validate
from .spec import FunnelSpec
from .sql import quote_ident

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
_ORDER = {"history": "lead_id, entered_at", "snapshots": "lead_id, month", "counts": "month, stage"}
_CANONICAL_NAMES = {"lead_id", "stage", "entered_at", "month", "count", "value"}
_RETRY_SECONDS = 0.2


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
        Rows (or, for counts, the summed count) per stage code, in funnel order.
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
    wait : float, default 0
        Seconds to keep retrying while another process holds the file; 0 fails at once.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> store = Store(Path(tempfile.mkdtemp()) / "funnel.duckdb")
    >>> df = pd.DataFrame({"lead_id": ["a"], "stage": ["NEW"],
    ...                    "entered_at": pd.to_datetime(["2024-01-03"])})
    >>> spec = FunnelSpec.from_dict({"stages": ["NEW"], "won": ["WON"]})
    >>> store.ingest(df, "history", spec=spec).rows
    1
    >>> store.read_any()[0], store.spec().codes
    ('history', ('NEW',))
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, wait: float = 0.0) -> None:
        self.path = Path(path)
        if not isinstance(wait, (int, float)) or wait < 0 or wait != wait:
            raise FunnelDataError(f"wait must be a number of seconds >= 0, got {wait!r}.")
        self.wait = float(wait)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connection
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                msg = str(exc).splitlines()[0]
                if "lock" not in msg.lower():
                    raise FunnelDataError(f"store {self.path}: cannot open it as a DuckDB database ({msg}). "
                                          "Fix: pass a store created by 'funnel ingest', or a new file "
                                          "name.") from None
                if time.monotonic() >= deadline:
                    waited = f" (waited {self.wait:g} s)" if self.wait else ""
                    raise StoreBusyError(
                        f"store {self.path}: in use by another process{waited} ({msg}). Fix: retry when "
                        "that process is done (close the notebook or command that has it open), or "
                        "wait for it with --wait SECONDS.") from None
                time.sleep(_RETRY_SECONDS)

    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.path.is_dir():
            raise FunnelDataError(f"store {self.path}: is a directory. Fix: pass a file path such as "
                                  f"{self.path / DEFAULT_STORE}.")
        con = self._open(read_only)
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
        return (json.loads(rows[0][0]), bool(rows[0][1])) if rows else ([], False)

    def _recorded(self, con: duckdb.DuckDBPyConnection) -> FunnelSpec | None:
        tables = self._tables(con)
        if "funnel_spec" not in tables:
            return None
        rows = con.execute("SELECT spec FROM funnel_spec").fetchall()
        if not rows:
            return None
        data = json.loads(rows[0][0])
        attrs: list[str] = []
        has_value = False
        for shape in SHAPES:
            if shape in tables:
                a, v = self._meta(con, shape)
                attrs += [x for x in a if x not in attrs]
                has_value = has_value or v
        data["attributes"] = attrs
        if has_value:
            data["value"] = "value"
        return FunnelSpec.from_dict(data, source=f"store {self.path} (recorded spec)")

    def spec(self) -> FunnelSpec:
        """The funnel spec recorded at ingest, with the stored attributes and value column.

        Raises
        ------
        FunnelDataError
            If the store does not exist or no ingest recorded a spec.
        """
        self._require_file()
        with self._connect(read_only=True) as con:
            spec = self._recorded(con)
        if spec is None:
            raise FunnelDataError(f"store {self.path}: no funnel spec was recorded (it was filled "
                                  "without one). Fix: pass the spec (spec: in the parameters, --spec), "
                                  "or ingest again with --spec SPEC.yaml.")
        return spec

    # ------------------------------------------------------------------ ingest
    def _prepare(self, df: pd.DataFrame, shape: str, month: Any,
                 spec: FunnelSpec | None) -> tuple[pd.DataFrame, list[str], str]:
        """Coerce ``df`` to its canonical dtypes and check its contract; return (df,
        attributes, mode). No store access."""
        if shape not in SHAPES:
            raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(SHAPES)}.")
        if not isinstance(df, pd.DataFrame):
            raise FunnelDataError(f"ingest expects a pandas DataFrame, got {type(df).__name__}.")
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        month_ts = parse_month(month, what="month") if month is not None else None
        if shape != "history" and "month" not in df.columns and month_ts is not None:
            df["month"] = month_ts
        missing = [c for c in NEEDS[shape] if c not in df.columns]
        if missing:
            raise FunnelDataError(f"ingest of {shape}: the data has no column(s) {missing} (columns: "
                                  f"{list(df.columns)}). Fix: read the file with funnel_models.data.readers "
                                  "first, or pass month= for a file without a month column.")
        if df.empty:
            raise FunnelDataError(f"ingest of {shape}: the data has no rows; nothing to store.")
        attrs = [c for c in df.columns if c not in _CANONICAL_NAMES]
        df = coerce_table(df, shape, attrs)
        validate(df, schema_for(shape, spec, attrs), f"ingest of {shape}")
        if month_ts is not None:
            time_col = "entered_at" if shape == "history" else "month"
            key = month_start(df[time_col])
            outside = int((key != month_ts).sum())
            if outside:
                raise FunnelDataError(
                    f"ingest of {shape} with month {month_ts:%Y-%m}: {outside} row(s) are in other "
                    f"months ({sorted(key[key != month_ts].dt.strftime('%Y-%m').unique())[:5]}). "
                    "Fix: drop --month to replace by the data's own months"
                    f"{' (for history: by lead)' if shape == 'history' else ''}, or filter the file.")
        mode = "replace-leads" if shape == "history" and month_ts is None else "replace-months"
        return df, attrs, mode

    def ingest(self, df: pd.DataFrame, shape: str, *, month: Any = None, source: str | None = None,
               spec: FunnelSpec | None = None) -> IngestReport:
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
        spec : FunnelSpec, optional
            The funnel the data follows. Recorded by the first ingest that passes one; a
            later ingest must pass the same funnel (stages, codes, ``stale_after``,
            ``timezone``). Stage codes are checked against it (or the recorded spec).

        Returns
        -------
        IngestReport

        Raises
        ------
        FunnelDataError, SpecError
            If the data does not fit (then the store file is not opened), or the funnel
            differs from the recorded one (then nothing is changed).
        StoreBusyError
            If another process holds the store (nothing is changed).
        """
        df, attrs, mode = self._prepare(df, shape, month, spec)
        time_col = "entered_at" if shape == "history" else "month"
        months = sorted(df[time_col].dt.strftime("%Y-%m").unique().tolist())
        with self._connect() as con:
            recorded = self._recorded(con)
            the_spec = self._check_spec(recorded, spec, df, shape)
            con.register("incoming_df", df)
            con.execute("BEGIN TRANSACTION")
            try:
                replaced = self._write(con, shape, attrs, "value" in df.columns, mode, months)
                if spec is not None and recorded is None:
                    con.execute("INSERT INTO funnel_spec VALUES (?, ?)",
                                [json.dumps(_funnel_dict(spec)), _dt.datetime.now().replace(microsecond=0)])
                report = self._log(con, shape, source, mode, months, replaced, the_spec)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("DROP TABLE IF EXISTS incoming")
            con.unregister("incoming_df")
        return report

    def _check_spec(self, recorded: FunnelSpec | None, spec: FunnelSpec | None, df: pd.DataFrame,
                    shape: str) -> FunnelSpec | None:
        """The spec to check ``df`` with; refuse a funnel that differs from the recorded one."""
        if spec is not None and recorded is not None and spec.funnel_key() != recorded.funnel_key():
            mine, theirs = spec.funnel_key(), recorded.funnel_key()
            diff = [f"{k}: {mine[k]} here, {theirs[k]} in the store" for k in mine if mine[k] != theirs[k]]
            raise SpecError(
                f"store {self.path}: the spec differs from the one recorded at the first ingest -- "
                f"{'; '.join(diff)}. Data of two different funnels cannot be stored together. Fix: "
                "ingest with the recorded funnel (same stages, codes, stale_after and timezone), or "
                "start a new store (--store NEW.duckdb) and ingest every file into it.")
        if spec is None and recorded is not None:
            validate(df, schema_for(shape, recorded), f"ingest into {self.path} (recorded spec)")
        return spec or recorded

    def _log(self, con: duckdb.DuckDBPyConnection, shape: str, source: str | None, mode: str,
             months: list[str], replaced: int, spec: FunnelSpec | None) -> IngestReport:
        """Inside the transaction: add the ingest to the log; return its report."""
        n_rows = con.execute("SELECT count(*) FROM incoming").fetchall()[0][0]
        leads = (None if shape == "counts" else
                 con.execute("SELECT count(DISTINCT lead_id) FROM incoming").fetchall()[0][0])
        agg = "sum(count)" if shape == "counts" else "count(*)"
        stages = dict(con.execute(f"SELECT stage, {agg} FROM incoming GROUP BY stage").fetchall())
        ingest_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM ingests").fetchall()[0][0]
        con.execute("INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [ingest_id, shape, source, mode, ",".join(months), n_rows, replaced,
                     _dt.datetime.now().replace(microsecond=0)])
        return IngestReport(ingest_id=ingest_id, shape=shape, source=source, mode=mode, months=months,
                            rows=n_rows, leads=leads, replaced_rows=replaced,
                            stages={str(k): int(stages[k]) for k in _ordered(stages, spec)})

    def _write(self, con: duckdb.DuckDBPyConnection, shape: str, attrs: list[str], has_value: bool,
               mode: str, months: list[str]) -> int:
        """Inside the transaction: create/extend tables, delete superseded rows, insert."""
        con.execute("CREATE TABLE IF NOT EXISTS funnel_meta (table_name VARCHAR, attributes VARCHAR, "
                    "has_value BOOLEAN)")
        con.execute("CREATE TABLE IF NOT EXISTS funnel_spec (spec VARCHAR, recorded_at TIMESTAMP)")
        con.execute("CREATE TABLE IF NOT EXISTS ingests (id INTEGER, shape VARCHAR, source VARCHAR, "
                    "mode VARCHAR, months VARCHAR, rows BIGINT, replaced_rows BIGINT, "
                    "ingested_at TIMESTAMP)")
        cols = ", ".join(f"{c} {t}" for c, t in _CANON[shape])
        con.execute(f"CREATE TABLE IF NOT EXISTS {shape} ({cols})")
        old_attrs, old_value = self._meta(con, shape)
        for a in attrs:
            if a not in old_attrs:
                con.execute(f"ALTER TABLE {shape} ADD COLUMN {quote_ident(a)} VARCHAR")
        all_attrs = old_attrs + [a for a in attrs if a not in old_attrs]
        con.execute("DELETE FROM funnel_meta WHERE table_name = ?", [shape])
        con.execute("INSERT INTO funnel_meta VALUES (?, ?, ?)",
                    [shape, json.dumps(all_attrs), bool(old_value or has_value)])
        select = [f"CAST({c} AS {t}) AS {c}" if c != "value" or has_value else "CAST(NULL AS DOUBLE) AS value"
                  for c, t in _CANON[shape]]
        select += [f"CAST({quote_ident(a)} AS VARCHAR) AS {quote_ident(a)}" for a in attrs]
        con.execute(f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT {', '.join(select)} FROM incoming_df")
        if shape == "history" and mode == "replace-leads":
            where = "lead_id IN (SELECT DISTINCT lead_id FROM incoming)"
        elif shape == "history":
            where = "strftime(entered_at, '%Y-%m') IN (SELECT unnest(?::VARCHAR[]))"
        else:
            where = "month IN (SELECT DISTINCT month FROM incoming)"
        params = [months] if "?" in where else []
        replaced = con.execute(f"DELETE FROM {shape} WHERE {where}", params).fetchall()[0][0]
        names = ", ".join(quote_ident(n) for n in [c for c, _ in _CANON[shape]] + attrs)
        con.execute(f"INSERT INTO {shape} ({names}) SELECT {names} FROM incoming")
        return int(replaced)

    # ------------------------------------------------------------------ read
    def _require_file(self) -> None:
        if not self.path.exists():
            raise FunnelDataError(f"store {self.path}: no such file. Fix: run 'funnel ingest FILE "
                                  f"--spec SPEC.yaml --store {self.path}' first.")

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
            ever ingested), sorted like them, checked against its contract.

        Raises
        ------
        FunnelDataError
            If the table was never ingested or a filter names an unknown column.
        StoreBusyError
            If another process holds the store.
        """
        if shape not in SHAPES:
            raise FunnelDataError(f"unknown shape {shape!r}; use one of {list(SHAPES)}.")
        self._require_file()
        with self._connect(read_only=True) as con:
            if shape not in self._tables(con):
                raise FunnelDataError(f"store {self.path}: no {shape} has been ingested yet. Fix: "
                                      f"ingest a {shape} file first, or read one of {self.shapes()}.")
            attrs, has_value = self._meta(con, shape)
            cols = [c for c, _ in _CANON[shape] if c != "value" or has_value] + attrs
            where, params = _read_filters(shape, cols, months, filters, self.path)
            sql = (f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {shape}"
                   + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {_ORDER[shape]}")
            df = con.sql(sql, params=params).to_arrow_table().to_pandas()
        df = canonical_dtypes(df, ["lead_id", "stage", *attrs])
        return validate(df, schema_for(shape, None, attrs), f"store {self.path} ({shape})")

    def shapes(self) -> list[str]:
        """The stored shapes, richest first (history, snapshots, counts)."""
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            tables = self._tables(con)
        return [s for s in SHAPES if s in tables]

    def read_any(self, *, months: Iterable[Any] | Any | None = None,
                 filters: Mapping[str, Any] | None = None) -> tuple[Shape, pd.DataFrame]:
        """Read the richest stored shape: history if any, else snapshots, else counts.

        Parameters
        ----------
        months, filters
            As in :meth:`read`.

        Returns
        -------
        (shape, DataFrame)

        Raises
        ------
        FunnelDataError
            If the store is missing or holds nothing.
        """
        self._require_file()
        shapes = self.shapes()
        if not shapes:
            raise FunnelDataError(f"store {self.path}: nothing has been ingested yet. Fix: run "
                                  f"'funnel ingest FILE --spec SPEC.yaml --store {self.path}'.")
        return shapes[0], self.read(shapes[0], months=months, filters=filters)  # type: ignore[return-value]

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
            ``{"path", "exists", "ingests", "spec" (dict or None), "tables": {shape: {"rows",
            "leads", "months" (list of YYYY-MM), "stages" ({code: rows}, funnel order),
            "attributes"}}}``.
        """
        out: dict[str, Any] = {"path": str(self.path), "exists": self.path.exists(),
                               "ingests": 0, "spec": None, "tables": {}}
        if not out["exists"]:
            return out
        with self._connect(read_only=True) as con:
            tables = self._tables(con)
            spec = self._recorded(con)
            out["spec"] = spec.to_dict() if spec is not None else None
            if "ingests" in tables:
                out["ingests"] = con.execute("SELECT count(*) FROM ingests").fetchall()[0][0]
            for shape in (s for s in SHAPES if s in tables):
                out["tables"][shape] = _table_status(con, shape, self._meta(con, shape)[0], spec)
        return out


# ---------------------------------------------------------------------- helpers
def _funnel_dict(spec: FunnelSpec) -> dict[str, Any]:
    """What the store records of a spec: the funnel without source layout or attributes."""
    d = spec.without_layout().to_dict()
    d.pop("attributes", None)
    d.pop("value", None)
    return d


def _ordered(codes: Iterable[str], spec: FunnelSpec | None) -> list[str]:
    return spec.order_codes(codes) if spec is not None else sorted(codes)


def _read_filters(shape: str, cols: list[str], months: Any, filters: Mapping[str, Any] | None,
                  path: Path) -> tuple[list[str], list[Any]]:
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
            raise FunnelDataError(f"store {path}: cannot filter {shape} on {col!r}; its "
                                  f"columns are {cols}.")
        vals = list(val) if isinstance(val, (list, tuple, set, frozenset)) else [val]
        where.append(f"CAST({quote_ident(col)} AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))")
        params.append([str(v) for v in vals])
    return where, params


def _table_status(con: duckdb.DuckDBPyConnection, shape: str, attrs: list[str],
                  spec: FunnelSpec | None) -> dict[str, Any]:
    tcol = "entered_at" if shape == "history" else "month"
    leads = "NULL" if shape == "counts" else "count(DISTINCT lead_id)"
    rows, n_leads = con.execute(f"SELECT count(*), {leads} FROM {shape}").fetchall()[0]
    months = [r[0] for r in con.execute(
        f"SELECT DISTINCT strftime({tcol}, '%Y-%m') AS m FROM {shape} ORDER BY m").fetchall()]
    agg = "sum(count)" if shape == "counts" else "count(*)"
    stages = dict(con.execute(f"SELECT stage, {agg} FROM {shape} GROUP BY stage").fetchall())
    return {"rows": int(rows), "leads": n_leads, "months": months,
            "stages": {s: int(stages[s]) for s in _ordered(stages, spec)}, "attributes": attrs}
