"""One-call entry points used by notebooks, the dashboard, the backtest and the CLI.

:func:`load_data` reads a data source (the demo, a file, a DuckDB store, or the Olist
example) into canonical stage history (or aggregate counts); :func:`fit_model` returns a
fitted model behind the one model interface; :func:`from_params` does both from a
parameter file's settings.

Examples
--------
>>> loaded = load_data("demo", demo_months=6)
>>> loaded.spec.codes[0]
'LEAD'
>>> quick = fit_model(loaded, model="conjugate")
>>> quick.posterior_funnel(draws=100).n_draws
100
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .data import derive
from .data.dates import cutoff_day, month_start, through_cutoff
from .data.spec import FunnelSpec
from .data.warehouse_source import is_warehouse_source
from .errors import FunnelDataError
from .models import BaseFunnelModel, ModelConfig, SamplerConfig, make_model
from .models.inflow import InflowModel

__all__ = ["LoadedData", "load_data", "load_params_data", "fit_model", "fit_inflow", "from_params", "model_name"]


@dataclass(frozen=True)
class LoadedData:
    """Canonical data with its spec and cut-off.

    Attributes
    ----------
    table : DataFrame
        The canonical table (after the cut-off and filters): stage history, monthly
        snapshots or aggregate counts, as ``kind`` says; for ``"warehouse"`` an empty frame
        with the history's columns (the rows stay in the warehouse).
    kind : {"history", "snapshots", "counts", "warehouse"}
    spec : FunnelSpec
    cutoff : Timestamp
        Last observed day.
    source : str
        What was read.
    truth : object or None
        The demo's :class:`~funnel_models.datasets.demo.DemoTruth` when the source is the demo.
    warehouse : WarehouseHistory or None
        For ``kind="warehouse"``: the stage history where it lives
        (:class:`~funnel_models.data.warehouse_source.WarehouseHistory`); a fit brings back
        only transition counts and won deal values.
    """

    table: pd.DataFrame
    kind: str
    spec: FunnelSpec
    cutoff: pd.Timestamp
    source: str
    truth: Any = None
    warehouse: Any = None

    @property
    def has_leads(self) -> bool:
        """Lead-level data (stage history or snapshots), as opposed to aggregate counts."""
        return self.kind != "counts"

    @property
    def history(self) -> pd.DataFrame | None:
        """The stage history (None for snapshots and counts)."""
        return self.table if self.kind == "history" else None

    @property
    def counts(self) -> pd.DataFrame | None:
        """The aggregate counts (None for lead-level data)."""
        return self.table if self.kind == "counts" else None

    @property
    def cutoff_month(self) -> pd.Timestamp:
        """First day of the cut-off month."""
        return month_start(self.cutoff)

    def _leads(self) -> pd.DataFrame:
        if not self.has_leads:
            raise FunnelDataError(f"{self.source}: only aggregate counts are available; this needs lead-level "
                                  "data (stage history or monthly snapshots)")
        if self.kind == "warehouse":
            return self.warehouse.history(self.cutoff)
        return self.table

    def lead_level(self) -> "LoadedData":
        """This data with its lead-level rows in pandas: a warehouse history is fetched (the
        backtest needs it); any other kind is returned as is."""
        if self.kind != "warehouse":
            return self
        return LoadedData(table=self._leads(), kind="history", spec=self.spec, cutoff=self.cutoff,
                          source=self.source, truth=self.truth)

    def snapshots(self) -> pd.DataFrame:
        """Monthly snapshots up to the cut-off (a warehouse history is fetched for them)."""
        if self.kind == "snapshots":
            return self.table
        return derive.snapshots_from_history(self._leads(), self.spec, cutoff=self.cutoff)

    def transitions(self, by: Sequence[str] = ()) -> pd.DataFrame:
        """Monthly transition counts by ``by`` (computed in the warehouse for a warehouse history)."""
        if self.kind == "warehouse":
            return self.warehouse.transitions(self.cutoff, by)
        return derive.transitions(self.snapshots(), self.spec, by=list(by))

    def fit_input(self, factors: Sequence[str] = ()) -> Any:
        """What a model's ``fit`` takes: snapshots, or for a warehouse history the
        :class:`~funnel_models.models.inputs.FunnelData` of warehouse-computed counts."""
        if self.kind != "warehouse":
            return self.snapshots()
        from .models.inputs import from_transitions
        return from_transitions(self.transitions(factors), self.warehouse.won_values(self.cutoff, factors))

    def pipeline(self, cutoff: pd.Timestamp | None = None) -> pd.DataFrame:
        """Open pipeline at the cut-off (default: the data's) -- one row per open lead, with its
        age in stage; a warehouse history returns only its open leads."""
        cut = self.cutoff if cutoff is None else cutoff_day(cutoff)
        if self.kind == "warehouse":
            return self.warehouse.pipeline(cut)
        return derive.open_pipeline(self._leads(), self.spec, cutoff=cut)

    def columns(self) -> list[str]:
        """Attribute columns available for segments and filters."""
        if self.kind == "warehouse":
            return self.warehouse.columns()
        skip = {"lead_id", "stage", "entered_at", "month", "count", "value"}
        return [c for c in self.table.columns if c not in skip]

    def n_leads(self) -> int:
        """Number of distinct leads (0 for aggregate counts)."""
        if self.kind == "warehouse":
            return self.warehouse.n_leads(self.cutoff)
        return int(self.table["lead_id"].nunique()) if self.has_leads else 0

    def n_levels(self, column: str) -> int:
        """Number of distinct values of an attribute column."""
        if self.kind == "warehouse":
            return self.warehouse.n_levels(column, self.cutoff)
        return int(self.table[column].nunique())


def _read_source(src: str, spec: Any, mapping: Mapping[str, str] | None, demo_seed: int,
                 demo_months: int) -> tuple[str, pd.DataFrame, FunnelSpec, Any]:
    """(kind, table, spec, truth) of a source."""
    if src == "demo":
        from .datasets.demo import demo_data
        d = demo_data(seed=demo_seed, months=demo_months)
        return "history", d.history, d.spec, d.truth
    if src == "coldleads":
        from .datasets.coldleads import cold_leads_data
        c = cold_leads_data(seed=demo_seed, months=demo_months)
        return "history", c.history, c.spec, c.truth
    if src == "olist":
        from .data.readers import read_history
        from .datasets.olist import OLIST_SPEC, olist_dir, olist_stage_history
        the_spec = FunnelSpec.load(spec) if spec is not None else FunnelSpec.from_dict(OLIST_SPEC)
        return "history", read_history(olist_stage_history(olist_dir()), the_spec, mapping=mapping), the_spec, None
    if src.endswith(".duckdb") and Path(src).is_file():
        from .data.store import Store
        store = Store(src)
        the_spec = FunnelSpec.load(spec) if spec is not None else store.spec()
        kind, table = store.read_any()
        return kind, table, the_spec, None
    if spec is None:
        raise FunnelDataError(f"{src}: a funnel spec is needed to read this file; pass spec= (a YAML path or a "
                              "dict with stages, won, lost), or run 'funnel init' on the file to write one")
    from .data.readers import read_any
    the_spec = FunnelSpec.load(spec)
    kind, table = read_any(src, the_spec, mapping=mapping)
    return kind, table, the_spec, None


def _load_warehouse(source: Any, spec: Any, mapping: Mapping[str, str] | None,
                    filters: Mapping[str, object] | None, start: str | None, end: str | None,
                    cutoff: str | None) -> LoadedData:
    """A stage history left in its warehouse (see :mod:`funnel_models.data.warehouse_source`)."""
    from .data.warehouse_source import WarehouseHistory, open_warehouse
    label = "the warehouse table" if not isinstance(source, (str, Path)) else str(source)
    if spec is None:
        raise FunnelDataError(f"{label}: a funnel spec is needed for a warehouse table; pass spec= (a YAML "
                              "path or a dict with stages, won, lost) or add 'spec: funnel.yaml' to the parameters")
    the_spec = FunnelSpec.load(spec)
    table, label = open_warehouse(source, the_spec, mapping=mapping)
    wh = WarehouseHistory(table, the_spec, label, dict(filters or {}), start, end)
    cut = cutoff_day(cutoff) if cutoff is not None else wh.last_day()
    if wh.n_leads(cut) == 0:
        raise FunnelDataError(f"{label}: no rows left after the cut-off {cut.date()} and filters "
                              f"{dict(filters or {})} start={start} end={end}; loosen them")
    empty = pd.DataFrame(columns=["lead_id", "stage", "entered_at", *wh.columns()])
    return LoadedData(table=empty, kind="warehouse", spec=the_spec, cutoff=cut, source=label, warehouse=wh)


def load_data(
    source: str | Path = "demo",
    *,
    spec: FunnelSpec | Mapping | str | Path | None = None,
    mapping: Mapping[str, str] | None = None,
    filters: Mapping[str, object] | None = None,
    start: str | None = None,
    end: str | None = None,
    cutoff: str | None = None,
    demo_seed: int = 42,
    demo_months: int = 36,
) -> LoadedData:
    """Read a data source into canonical stage history (or aggregate counts).

    Parameters
    ----------
    source : str, path or ibis.Table
        ``"demo"`` (bundled generator: the model's own assumptions), ``"coldleads"`` (a
        generator built to break them, :mod:`funnel_models.datasets.coldleads`),
        ``"olist"`` (the Olist example data), a
        CSV/Parquet file of stage history, monthly snapshots or aggregate counts, a store
        written by ``funnel ingest`` (``"store.duckdb"``, which records its spec) or
        ``"file.duckdb::table"`` (all read into pandas); or a stage history left in its
        warehouse: ``"duckdb:///path/file.duckdb::table"`` (any Ibis URL before ``::``) or an
        Ibis table (e.g. on Spark) -- models then fetch only transition counts.
    spec : FunnelSpec, mapping or YAML path
        Required for files; the demo, Olist and stores bring their own.
    mapping : mapping, optional
        Column mapping overriding the spec's.
    filters, start, end :
        Attribute filters and time frame applied before any derivation.
    cutoff : str, optional
        Last observed day (default: the latest date in the data); rows dated after that
        day are left out.
    """
    if is_warehouse_source(source):
        return _load_warehouse(source, spec, mapping, filters, start, end, cutoff)
    src = str(source)
    kind, table, the_spec, truth = _read_source(src, spec, mapping, demo_seed, demo_months)
    col = "entered_at" if kind == "history" else "month"
    if table is None or table.empty:
        raise FunnelDataError(f"{src}: no rows to analyse")
    if cutoff is not None:
        cut = cutoff_day(cutoff)
    elif truth is not None:
        cut = pd.Timestamp(truth.start + pd.DateOffset(months=truth.months)) - pd.Timedelta(days=1)
    else:
        last = pd.Timestamp(pd.to_datetime(table[col]).max())
        cut = cutoff_day(last) if kind == "history" else last + pd.offsets.MonthEnd(0)
    table = through_cutoff(table, col, cut)
    if filters or start or end:
        table = derive.filter_frame(table, filters, start=start, end=end)
    if table.empty:
        raise FunnelDataError(f"{src}: no rows left after the cut-off {cut.date()} and filters "
                              f"{dict(filters or {})} start={start} end={end}; loosen them")
    return LoadedData(table=table.reset_index(drop=True), kind=kind, spec=the_spec, cutoff=cut, source=src,
                      truth=truth)


def model_name(requested: str, data: LoadedData) -> str:
    """The model an ``auto`` request gets: the Markov model for lead-level data, the lag
    model for aggregate counts."""
    if requested == "auto":
        return "markov" if data.has_leads else "lag"
    if requested in ("markov", "conjugate") and not data.has_leads:
        raise FunnelDataError(f"{data.source}: the {requested} model needs lead-level data (stage history or "
                              "monthly snapshots); aggregate counts support model: lag (or auto)")
    return requested


def fit_model(
    data: LoadedData,
    *,
    model: str = "auto",
    factors: Sequence[str] = (),
    model_config: ModelConfig | Mapping[str, Any] | None = None,
    sampler_config: SamplerConfig | Mapping[str, Any] | None = None,
    cache_dir: str | Path | bool | None = None,
    progress: bool = False,
) -> BaseFunnelModel:
    """A fitted model for ``data``, behind the one model interface.

    Parameters
    ----------
    data : LoadedData
    model : {"auto", "markov", "conjugate", "lag"}
        See :func:`model_name`.
    factors : sequence of str
        Segment factors (added to ``model_config``).
    model_config, sampler_config : optional
        Settings of the model (see :mod:`funnel_models.models.config`).
    cache_dir : path or False, optional
        Fit cache (MCMC fits are cached by a hash of spec, settings and data).
    progress : bool
        Show the sampler's progress bar.
    """
    cfg = ModelConfig.model_validate(model_config or {}) if not isinstance(model_config, ModelConfig) \
        else model_config
    cfg = cfg.model_copy(update={"factors": list(factors) or list(cfg.factors)})
    name = model_name(model, data)
    m = make_model(name, data.spec, cfg, sampler_config, cache_dir=cache_dir)
    if name == "lag":
        return m.fit(data, progress=progress)
    return m.fit(data.fit_input(cfg.factors), progress=progress)


def load_params_data(params: Any) -> LoadedData:
    """The data a parameter file's settings name (:class:`funnel_models.params.RunParams`:
    source, spec, mapping, segment filters, start, end, cut-off)."""
    return load_data(params.source, spec=params.spec, mapping=params.mapping or None,
                     filters=params.segment_filters or None, start=params.start, end=params.end,
                     cutoff=params.cutoff)


def from_params(params: Any, *, progress: bool = False, cache_dir: str | Path | bool | None = None
                ) -> tuple[LoadedData, BaseFunnelModel]:
    """Load the data and fit the model of a parameter file's settings
    (:class:`funnel_models.params.RunParams`)."""
    data = load_params_data(params)
    model = fit_model(data, model=params.model, factors=params.factors, model_config=params.settings,
                      sampler_config=params.sampler_settings(progress=progress), cache_dir=cache_dir,
                      progress=progress)
    return data, model


def fit_inflow(data: LoadedData, params: Any = None, *, factors: Sequence[str] | None = None,
               progress: bool = False, cache_dir: str | Path | bool | None = None) -> InflowModel:
    """A fitted model of new leads per month (:class:`~funnel_models.models.inflow.InflowModel`)
    for ``data``, with the factors and sampler settings of ``params`` (a RunParams) when given."""
    del cache_dir
    fs = list(factors if factors is not None else (params.factors if params is not None else ()))
    if not data.has_leads:
        fs = []
    sampler = params.sampler_settings(progress=progress) if params is not None else {"progress": progress}
    return InflowModel(fs, sampler).fit(data, progress=progress)
