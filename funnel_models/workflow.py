"""One-call entry points used by notebooks, the dashboard, the backtest and the CLI.

:func:`load_data` reads a data source (the demo, a file, a DuckDB store, or the Olist
example) into canonical stage history; :func:`fit_model` returns a fitted, cached model.

Examples
--------
>>> loaded = load_data("demo", demo_months=6)
>>> loaded.spec.codes[0]
'LEAD'
>>> quick = fit_model(loaded, quick=True)
>>> quick.posterior_funnel(draws=100).n_draws
100
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .data import derive
from .errors import FunnelDataError
from .data.spec import FunnelSpec

__all__ = ["LoadedData", "load_data", "fit_model", "OLIST_DIR"]

_OLIST_REL = Path("shared") / "datasets" / "olist-marketing-funnel"


def _find_olist() -> Path:
    """The Olist folder: ``$FUNNEL_OLIST_DIR``, else ``../shared/...`` next to the working
    directory or the source checkout (read in place, never copied)."""
    import os
    if os.environ.get("FUNNEL_OLIST_DIR"):
        return Path(os.environ["FUNNEL_OLIST_DIR"])
    here = Path(__file__).resolve()
    candidates = [Path.cwd().parent / _OLIST_REL, Path.cwd() / _OLIST_REL, here.parents[2] / _OLIST_REL]
    return next((c for c in candidates if c.exists()), candidates[0])


#: Where the Olist example data is looked for (set ``FUNNEL_OLIST_DIR`` to override).
OLIST_DIR = _find_olist()


@dataclass(frozen=True)
class LoadedData:
    """Canonical stage history with its spec and cut-off.

    Attributes
    ----------
    history : DataFrame
        Canonical stage history (after filters).
    spec : FunnelSpec
    cutoff : Timestamp
        Last observed day.
    source : str
        What was read.
    truth : object or None
        The demo's :class:`~funnel_models.datasets.demo.DemoTruth` when the source is the demo.
    """

    history: pd.DataFrame
    spec: FunnelSpec
    cutoff: pd.Timestamp
    source: str
    truth: Any = None

    @property
    def cutoff_month(self) -> pd.Timestamp:
        """First day of the cut-off month."""
        return derive.month_start(self.cutoff)

    def snapshots(self) -> pd.DataFrame:
        """Monthly snapshots of the history up to the cut-off."""
        return derive.snapshots_from_history(self.history, self.spec, cutoff=self.cutoff)

    def pipeline(self) -> pd.DataFrame:
        """Open pipeline at the cut-off."""
        return derive.open_pipeline(self.history, self.spec, cutoff=self.cutoff)


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
    """Read a data source into canonical stage history.

    Parameters
    ----------
    source : str or path
        ``"demo"`` (bundled generator), ``"olist"`` (the Olist example data next to the
        repository), a CSV/Parquet file of stage history, or ``"store.duckdb"`` (a store
        written by ``funnel ingest``; ``"file.duckdb::table"`` reads a table).
    spec : FunnelSpec, mapping or YAML path
        Required for files; the demo and Olist bring their own.
    mapping : mapping, optional
        Column mapping overriding the spec's.
    filters, start, end :
        Attribute filters and time frame applied before any derivation.
    cutoff : str, optional
        Last observed day (default: the latest date in the data).
    """
    truth = None
    src = str(source)
    if src == "demo":
        from .datasets.demo import demo_data
        d = demo_data(seed=demo_seed, months=demo_months)
        history, the_spec, cut, truth = d.history, d.spec, d.cutoff, d.truth
    elif src == "olist":
        from .datasets.olist import OLIST_SPEC, olist_stage_history
        from .data.readers import read_history
        if not OLIST_DIR.exists():
            raise FunnelDataError(f"the Olist example data is not at {OLIST_DIR}; pass its folder as a "
                                  "CSV source or put the dataset there")
        the_spec = FunnelSpec.load(spec) if spec is not None else FunnelSpec.from_dict(OLIST_SPEC)
        raw = olist_stage_history(OLIST_DIR)
        history = read_history(raw, the_spec, mapping=mapping)
        cut = pd.Timestamp(history["entered_at"].max()).normalize()
    else:
        if spec is None:
            raise FunnelDataError(f"{src}: a funnel spec is needed to read this file; pass spec= "
                                  "(a YAML path or a dict with stages, won, lost)")
        the_spec = FunnelSpec.load(spec)
        if src.endswith(".duckdb") and Path(src).exists():
            from .data.store import Store
            history = Store(src).read("history")
        else:
            from .data.readers import read_history
            history = read_history(src, the_spec, mapping=mapping)
        if history.empty:
            raise FunnelDataError(f"{src}: no stage history rows to analyse")
        cut = pd.Timestamp(history["entered_at"].max()).normalize()
    if cutoff is not None:
        cut = pd.Timestamp(cutoff)
        history = history[pd.to_datetime(history["entered_at"]) <= cut + pd.Timedelta(days=1)]
    if filters or start or end:
        history = derive.filter_frame(history, filters, start=start, end=end)
        if history.empty:
            raise FunnelDataError(f"{src}: no rows left after filters {dict(filters or {})} "
                                  f"start={start} end={end}; loosen the filters")
    return LoadedData(history=history.reset_index(drop=True), spec=the_spec, cutoff=cut,
                      source=src, truth=truth)


def fit_model(
    data: LoadedData,
    *,
    quick: bool = False,
    factors: Sequence[str] = (),
    change_points: Sequence[Mapping[str, str]] = (),
    time_varying: bool = False,
    sampler_config: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Any:
    """A fitted model for ``data``: the MCMC :class:`FunnelModel` (cached) or quick mode.

    Both returned types offer ``posterior_funnel(segment)``; the MCMC model also has
    ``diagnostics()``, ``summary()`` and ``change_point_effects()``.
    """
    from .models import ConjugateFunnel, FunnelModel
    if quick:
        return ConjugateFunnel(data.spec, factors=factors).fit(data.history)
    cfg = {"factors": list(factors), "change_points": [dict(c) for c in change_points],
           "time_varying": time_varying}
    sc = dict(sampler_config or {})
    sc.setdefault("progress", progress)
    model = FunnelModel(data.spec, cfg, sc, cache_dir=cache_dir)
    snaps = derive.snapshots_from_history(data.history, data.spec, cutoff=data.cutoff)
    return model.fit(snaps)
