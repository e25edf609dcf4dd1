"""The few engine-specific Ibis expressions, written once for every warehouse query.

Ibis compiles one expression to DuckDB, Spark SQL and other engines; only a handful of
operations differ. :func:`backend_name` names the engine a table lives on, and
:func:`epoch_us` gives integer microseconds since the epoch on each of them, and
:func:`table_by_name` opens ``"table"`` or ``"database.table"`` on a backend.
"""
from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.datatypes as dt

__all__ = ["backend_name", "epoch_us", "table_by_name"]


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(x: dt.timestamp) -> dt.int64:  # pragma: no cover - compiled to SQL
    """DuckDB's integer microseconds since the epoch."""


@ibis.udf.scalar.builtin(name="unix_micros")
def _spark_unix_micros(x: dt.timestamp) -> dt.int64:  # pragma: no cover - compiled to SQL
    """Spark's integer microseconds since the epoch."""


def backend_name(t: ibis.Table) -> str:
    """Name of the Ibis backend a table lives on (``"duckdb"``, ``"pyspark"``...)."""
    try:
        return t._find_backend(use_default=True).name
    except Exception:  # pragma: no cover - unbound expressions run on the default backend
        return "duckdb"


def epoch_us(ts: ibis.Value, backend: str) -> ibis.Value:
    """Integer microseconds since the epoch, the only engine-specific expression.

    DuckDB has ``epoch_us``, Spark ``unix_micros``; other engines use Ibis' portable
    ``epoch_seconds`` plus ``microsecond``.
    """
    if backend == "duckdb":
        return _duckdb_epoch_us(ts)
    if backend == "pyspark":  # via TIMESTAMP: unix_micros refuses TIMESTAMP_NTZ
        return _spark_unix_micros(ts.cast(dt.Timestamp(timezone="UTC")))
    return ts.epoch_seconds().cast("int64") * 1_000_000 + ts.microsecond().cast("int64")


def table_by_name(backend: Any, name: str) -> ibis.Table:
    """``backend.table`` for ``"table"`` or ``"schema.table"`` (``"catalog.schema.table"``);
    the backend's own exception when there is no such table."""
    parts = name.split(".")
    if len(parts) == 1:
        return backend.table(name)
    return backend.table(parts[-1], database=".".join(parts[:-1]))
