"""Where the event log lives: open it as an Ibis table, and name it so it can be reopened.

Accepted ``events`` inputs
--------------------------
* a :class:`pandas.DataFrame` (run on an embedded DuckDB);
* a path (``str``/``Path``) to a ``.parquet``/``.pq`` file, a directory or glob of Parquet
  files, or a ``.csv``/``.csv.gz``/``.tsv`` file (scanned in place by DuckDB);
* an Ibis table expression, on any backend (DuckDB, PySpark, ClickHouse, BigQuery...);
* a pair ``(where, "table")`` where ``where`` is a :class:`duckdb.DuckDBPyConnection`, a
  :class:`pyspark.sql.SparkSession`, an Ibis backend, or a connection URL:
  ``"duckdb:///path/file.duckdb"`` (any URL :func:`ibis.connect` understands), or a Spark
  master (``"spark://host:7077"``, ``"local[2]"``, ``"yarn"``);
* a table name together with ``con=`` (a DuckDB connection).

A file path with ``con=`` is scanned by that connection, e.g. one opened with
``duckdb.connect(config={"memory_limit": "3GB", "temp_directory": "/tmp/spill"})`` to cap
memory on large logs; otherwise a fresh embedded DuckDB is used.

:class:`SourceRef` is the plain, picklable name of the source kept by the result: the
DataFrame itself, a path, or a URL plus table. Live connections (a DuckDB connection on an
in-memory database, a SparkSession, an Ibis table) are kept only in memory: a result that
was pickled and sent elsewhere can still be read, but cannot re-query such a source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pandas as pd

from ..data.engines import epoch_us, table_by_name
from ..errors import FunnelDataError

__all__ = ["SourceRef", "open_source", "epoch_us"]

_CSV = (".csv", ".csv.gz", ".tsv", ".txt")
_SPARK_MASTERS = ("spark://", "local", "yarn", "k8s://", "mesos://")


@dataclass
class SourceRef:
    """The name of an event source, enough to open it again.

    Attributes
    ----------
    kind : {"dataframe", "parquet", "csv", "duckdb", "url", "spark", "ibis"}
    location : str
        Path, database file, URL or Spark master ("" for DataFrames and Ibis tables).
    table : str
        Table name inside ``location`` ("" for files and DataFrames).
    frame : DataFrame or None
        The events, for DataFrame sources.
    label : str
        How error messages name the source.
    live : object
        The live connection/table for sources that cannot be reopened from their name;
        not pickled.
    """

    kind: str
    location: str = ""
    table: str = ""
    frame: pd.DataFrame | None = field(default=None, repr=False)
    label: str = ""
    live: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["live"] = None
        return state

    def open(self) -> ibis.Table:
        """Open the source as an Ibis table (again)."""
        return _open_ref(self)


def _open_ref(ref: SourceRef) -> ibis.Table:
    if ref.live is not None:
        return ref.live if isinstance(ref.live, ibis.Table) else _table_of(ref.live, ref.table, ref.label)
    if ref.kind == "dataframe":
        return _memtable(ref.frame)
    if ref.kind == "parquet":
        return _read(lambda c: c.read_parquet(ref.location), ref.label)
    if ref.kind == "csv":
        return _read(lambda c: c.read_csv(ref.location), ref.label)
    if ref.kind in ("duckdb", "url", "spark") and ref.location:
        return _table_of(_connect(ref.location), ref.table, ref.label)
    raise FunnelDataError(f"{ref.label}: this result was computed on a live connection that "
                          "did not travel with it; recompute the funnel where the data is.")


def _duckdb() -> Any:
    """A fresh embedded DuckDB; row order is never needed, so DuckDB may drop it."""
    return ibis.duckdb.connect(preserve_insertion_order=False)


def _memtable(df: pd.DataFrame) -> ibis.Table:
    con = _duckdb()
    return con.table(_register(con, df))


def _register(con: Any, df: pd.DataFrame) -> str:
    name = "fm_events"
    con.con.register(name, df)
    return name


def _read(fn: Any, label: str, backend: Any = None) -> ibis.Table:
    try:
        return fn(backend if backend is not None else _duckdb())
    except Exception as exc:  # DuckDB raises many types for unreadable files
        raise FunnelDataError(f"{label}: cannot read the events: {exc}") from exc


def _connect(where: str) -> Any:
    if where.startswith(_SPARK_MASTERS):
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.master(where).getOrCreate()
        return ibis.pyspark.connect(spark)
    try:
        return ibis.connect(where)
    except Exception as exc:
        raise FunnelDataError(f"cannot connect to {where!r}: {exc}. Use a URL such as "
                              "'duckdb:///path/file.duckdb' or a Spark master such as "
                              "'spark://host:7077'.") from exc


def _backend_of(where: Any) -> Any:
    """An Ibis backend for a DuckDB connection, SparkSession, Ibis backend or URL."""
    import duckdb

    if isinstance(where, duckdb.DuckDBPyConnection):
        return ibis.duckdb.from_connection(where)
    if type(where).__name__ == "SparkSession":
        return ibis.pyspark.connect(where)
    if isinstance(where, str):
        return _connect(where)
    if hasattr(where, "table") and hasattr(where, "name"):
        return where
    raise FunnelDataError(f"events=(where, table): 'where' must be a DuckDB connection, a "
                          f"SparkSession, an Ibis backend or a URL, got {type(where).__name__}.")


def _table_of(backend: Any, name: str, label: str) -> ibis.Table:
    try:
        return table_by_name(backend, name)
    except Exception as exc:
        raise FunnelDataError(f"{label}: cannot read the events: {exc}") from exc


def _duckdb_file(where: Any) -> str:
    """``duckdb:///file`` URL of a DuckDB connection's database file ("" when in memory)."""
    import duckdb

    if not isinstance(where, duckdb.DuckDBPyConnection):
        return ""
    try:
        rows = where.cursor().execute("SELECT path FROM duckdb_databases() "
                                      "WHERE database_name = current_database()").fetchall()
    except duckdb.Error:  # pragma: no cover - very old DuckDB
        return ""
    return f"duckdb:///{rows[0][0]}" if rows and rows[0][0] else ""


def _looks_like_path(x: Any) -> bool:
    s = str(x)
    return isinstance(x, Path) or "/" in s or "\\" in s or s.lower().endswith(
        (".parquet", ".pq") + _CSV)


def _pair(events: tuple, con: Any) -> tuple[ibis.Table, SourceRef]:
    if len(events) != 2 or not isinstance(events[1], str):
        raise FunnelDataError("events=(where, table): pass a connection, SparkSession, Ibis "
                              f"backend or URL and a table name, got {events!r}.")
    where, name = events
    backend = _backend_of(where)
    label = f"table {name!r}"
    kind, location = "duckdb", _duckdb_file(where)
    if isinstance(where, str):
        kind = "spark" if where.startswith(_SPARK_MASTERS) else "url"
        location = where
    ref = SourceRef(kind=kind, location=location, table=name, label=label,
                    live=None if isinstance(where, str) else backend)
    return _table_of(backend, name, label), ref


def _path(events: str | Path, con: Any = None) -> tuple[ibis.Table, SourceRef]:
    p = str(events)
    if p.lower().endswith(_CSV):
        if not Path(p).exists():
            raise FunnelDataError(f"{p}: CSV file not found.")
        ref = SourceRef(kind="csv", location=p, label=p)
    else:
        if "*" not in p and not Path(p).exists():
            raise FunnelDataError(f"{p}: file not found. Pass a Parquet/CSV path, a "
                                  "DataFrame, an Ibis table or (connection, table).")
        if Path(p).is_dir():
            p = str(Path(p) / "**" / "*.parquet")
        ref = SourceRef(kind="parquet", location=p, label=p)
    if con is None:
        return ref.open(), ref
    backend = _backend_of(con)
    method = "read_csv" if ref.kind == "csv" else "read_parquet"
    return _read(lambda b: getattr(b, method)(ref.location), ref.label, backend), ref


def open_source(events: Any, con: Any = None) -> tuple[ibis.Table, SourceRef]:
    """Open ``events`` (see the module docstring) as an Ibis table plus its :class:`SourceRef`.

    Raises
    ------
    FunnelDataError
        For a missing file, an unreadable table or an unsupported input type.
    """
    if isinstance(events, tuple):
        return _pair(events, con)
    if isinstance(events, pd.DataFrame):
        ref = SourceRef(kind="dataframe", frame=_utc_naive(events), label="the events DataFrame")
        return ref.open(), ref
    if isinstance(events, ibis.Table):
        ref = SourceRef(kind="ibis", label="the events table", live=events)
        return events, ref
    if isinstance(events, (str, Path)) and con is not None and not _looks_like_path(events):
        return _pair((con, str(events)), None)
    if isinstance(events, (str, Path)):
        return _path(events, con)
    raise FunnelDataError("events must be a DataFrame, a Parquet/CSV path, an Ibis table or "
                          f"(connection, table); got {type(events).__name__}.")


def _utc_naive(df: pd.DataFrame) -> pd.DataFrame:
    """Time-zone aware columns converted to naive UTC (what the engines compare)."""
    tz = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not tz:
        return df
    out = df.copy()
    for c in tz:
        out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out
