"""A stage history that stays in its warehouse: open it, and fetch only the small tables.

A warehouse source is named ``"duckdb:///path/to/file.duckdb::table_name"`` in parameter
files (any URL :func:`ibis.connect` understands works before the ``::``, e.g.
``"postgres://user@host/db::crm.stage_history"``), or passed as an Ibis table in the Python
API (a table on a Spark session: ``ibis.pyspark.connect(spark).table("history")``).

:class:`WarehouseHistory` holds the canonical Ibis expression (:mod:`funnel_models.data.warehouse`)
with the cut-off and filters of a run, and brings back only what a command needs: transition
counts and won deal values for a fit, the open leads for the pipeline, a few scalars. The
lead-level rows are fetched only by :meth:`WarehouseHistory.history` (the backtest and the
report's stage counts need them).
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import ibis
import pandas as pd

from ..errors import FunnelDataError
from .dates import cutoff_day
from .engines import table_by_name
from .spec import FunnelSpec
from .warehouse import (canonical_history, check_history, history_cutoff, pipeline_expr,
                        warehouse_transitions, won_values_expr, scoped_rows)

__all__ = ["is_warehouse_source", "WarehouseHistory", "open_warehouse"]


def is_warehouse_source(source: Any) -> bool:
    """True for an Ibis table or a ``"<url>::<table>"`` string (``duckdb:///file.duckdb::t``)."""
    if isinstance(source, ibis.Table):
        return True
    s = str(source)
    return "://" in s.split("::")[0] and "::" in s


def _connect(url: str, label: str) -> Any:
    if url.startswith("duckdb://"):
        given = url[len("duckdb://"):]
        path = "/" + given.lstrip("/") if given.startswith("/") else given
        if not Path(path).is_file() and Path(given.lstrip("/")).is_file():
            path = given.lstrip("/")     # duckdb:///relative.duckdb (SQLAlchemy style)
        if not Path(path).is_file():
            folder = Path(path).parent
            near = difflib.get_close_matches(Path(path).name, [p.name for p in folder.glob("*")]
                                             if folder.is_dir() else [], n=3, cutoff=0.6)
            hint = f" Similar files there: {near}." if near else ""
            raise FunnelDataError(f"{label}: DuckDB file {path} not found.{hint} Fix: check the path; write it "
                                  "as duckdb:///absolute/path/file.duckdb::table (three slashes).")
        try:
            return ibis.duckdb.connect(path, read_only=True)
        except Exception as exc:
            raise FunnelDataError(f"{label}: cannot open the DuckDB file {path}: {exc}") from None
    try:
        return ibis.connect(url)
    except Exception as exc:
        raise FunnelDataError(f"{label}: cannot connect to {url!r}: {exc}. Fix: use a URL such as "
                              "duckdb:///path/file.duckdb::table") from None


def _table_names(backend: Any) -> list[str]:
    """The tables a backend holds (for the "did you mean" hint; [] when it cannot say)."""
    try:
        return list(backend.list_tables())
    except Exception:
        pass
    try:    # DuckDB builds where Ibis' listing fails: ask the catalogue directly
        rows = backend.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        return [r[0] for r in rows]
    except Exception:  # pragma: no cover - backends without a table listing
        return []


def _table(backend: Any, name: str, label: str) -> ibis.Table:
    try:
        return table_by_name(backend, name)
    except Exception:
        tables = _table_names(backend)
        near = difflib.get_close_matches(name.split(".")[-1], tables, n=3, cutoff=0.5)
        hint = f" Did you mean {near}?" if near else ""
        raise FunnelDataError(f"{label}: no table {name!r} in the database; its tables are "
                              f"{sorted(tables)[:20]}.{hint} Fix: correct the name after '::'.") from None


def open_warehouse(source: str | ibis.Table, spec: FunnelSpec, *, mapping: Mapping[str, str] | None = None,
                   check: bool = True) -> tuple[ibis.Table, str]:
    """The source as a canonical Ibis table (see :func:`~funnel_models.data.warehouse.canonical_history`)
    and its label.

    Parameters
    ----------
    source : str or ibis.Table
        ``"<url>::<table>"`` or an Ibis table.
    spec : FunnelSpec
    mapping : mapping, optional
        Canonical column name -> the table's column name.
    check : bool
        Run the data check (missing ids, dates, unknown codes): one aggregate query.

    Raises
    ------
    FunnelDataError
        Missing file, missing table, missing column or bad rows, naming the source and the fix.
    """
    if isinstance(source, ibis.Table):
        table, label = source, "the warehouse table"
    else:
        url, _, name = str(source).rpartition("::")
        label = str(source)
        table = _table(_connect(url, label), name, label)
    h = canonical_history(table, spec, mapping=mapping, label=label)
    if check:
        check_history(h, spec, label=label)
    return h, label


@dataclass
class WarehouseHistory:
    """A canonical stage history in a warehouse, with a run's filters.

    Attributes
    ----------
    table : ibis.Table
        Output of :func:`~funnel_models.data.warehouse.canonical_history`.
    spec : FunnelSpec
    label : str
        How messages name the source.
    filters : dict
        Attribute filters of the run.
    start, end : str or None
        Time frame on each lead's first entry.
    """

    table: ibis.Table
    spec: FunnelSpec
    label: str
    filters: dict[str, object] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    _fetched: dict[pd.Timestamp, pd.DataFrame] = field(default_factory=dict, repr=False)

    def _scope(self) -> dict[str, Any]:
        return {"filters": self.filters or None, "start": self.start, "end": self.end}

    def last_day(self) -> pd.Timestamp:
        """The day of the latest ``entered_at`` (the default cut-off)."""
        return history_cutoff(self.table)

    def columns(self) -> list[str]:
        """Attribute columns available for segments and filters."""
        return [c for c in self.table.columns if c not in ("lead_id", "stage", "entered_at", "value", "r", "m")]

    def _rows(self, cutoff: pd.Timestamp) -> ibis.Table:
        return scoped_rows(self.table, cutoff_day(cutoff), self.filters or None, self.start, self.end)

    def n_leads(self, cutoff: pd.Timestamp) -> int:
        """Distinct leads known at the cut-off (after the filters)."""
        return int(self._rows(cutoff).lead_id.nunique().execute())

    def n_levels(self, column: str, cutoff: pd.Timestamp) -> int:
        """Distinct non-null values of an attribute column."""
        return int(self._rows(cutoff)[column].nunique().execute())

    def transitions(self, cutoff: pd.Timestamp, by: Sequence[str] = ()) -> pd.DataFrame:
        """Monthly transition counts (``derive.transitions`` columns), computed in the warehouse."""
        return warehouse_transitions(self.table, self.spec, cutoff=cutoff, by=list(by), canonical=True,
                                     **self._scope())

    def won_values(self, cutoff: pd.Timestamp, by: Sequence[str] = ()) -> pd.DataFrame:
        """Won leads' deal values (``value, *by``), ordered by lead as the pandas path orders them."""
        if "value" not in self.table.columns:
            return pd.DataFrame(columns=["value", *by])
        w = won_values_expr(self._rows(cutoff), self.spec, cutoff=cutoff, by=list(by)).to_pandas()
        return w.sort_values("lead_id", kind="stable")[["value", *by]].reset_index(drop=True)

    def pipeline(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        """The open leads at the cut-off (``derive.open_pipeline`` columns)."""
        p = pipeline_expr(self._rows(cutoff), self.spec, cutoff=cutoff).to_pandas()
        p["entered_at"] = pd.to_datetime(p["entered_at"]).astype("datetime64[ns]")
        p["age_months"] = p["age_months"].astype("int64")
        first = ["lead_id", "stage", "entered_at", "age_days", "age_months"]
        p = p[first + [c for c in p.columns if c not in first]]
        return p.sort_values("lead_id", kind="stable").reset_index(drop=True)

    def history(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        """The lead-level rows known at the cut-off (canonical columns), fetched once per cut-off.

        Only the backtest and the report's stage counts need them; a fit does not.
        """
        cut = cutoff_day(cutoff)
        if cut not in self._fetched:
            t = self._rows(cut).drop("r", "m").order_by(["lead_id", "entered_at"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                df = t.to_pandas()
            df["entered_at"] = pd.to_datetime(df["entered_at"]).astype("datetime64[ns]")
            rank = self.spec.rank()
            df = df.assign(_r=df["stage"].map(rank)).sort_values(["lead_id", "entered_at", "_r"], kind="stable")
            self._fetched[cut] = df.drop(columns="_r").reset_index(drop=True)
        return self._fetched[cut]
