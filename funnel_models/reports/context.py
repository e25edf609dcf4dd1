"""The start of every report notebook: parameters in, data, model, inflow and pipeline out.

A notebook's ``parameters`` cell holds the flat parameters of its notebook
(:func:`funnel_models.params.notebook_parameters`: the top level of a parameter file
plus the notebook's section). :func:`open_report` rebuilds the
:class:`~funnel_models.params.ParameterFile` from them, runs the same
:func:`~funnel_models.preflight.preflight` as the command line, and :func:`prepare`
loads the data and fits the model behind the one model interface
(:class:`~funnel_models.models.base.BaseFunnelModel`): the report never asks which
model it holds.

New leads: with ``new_leads`` given, forecasts and plans take that many per month as a
plan; without it, the inflow model (:func:`funnel_models.workflow.fit_inflow`) gives
draws of the coming months' new leads, so forecasts carry the inflow's uncertainty.
"""
from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data import derive
from ..data.spec import ENTRY
from ..params import NOTEBOOK_SECTIONS, ParameterFile, notebook_parameters
from ..posterior import PosteriorFunnel
from .render import capture, month_label, public_text

__all__ = ["Context", "prepare", "prefit", "notebook_values"]

#: Notebooks that fit the funnel model (the backtest fits its own, per cut-off).
_NO_MODEL = ("backtest",)


@dataclass
class Context:
    """Data, model, inflow and the key numbers of one report run."""

    notebook: str
    params: ParameterFile
    data: Any
    model: Any = None
    post: PosteriorFunnel | None = None
    pipeline: pd.DataFrame | None = None
    factors: list[str] = field(default_factory=list)
    inflow: Any = None
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    summary_path: str = ""
    #: Results a notebook computes once and several sections show (e.g. ``backtest``).
    results: dict[str, Any] = field(default_factory=dict)
    #: Whether a Plotly figure (with plotly.js inline) was already shown in this report.
    plotlyjs_embedded: bool = False

    @property
    def section(self) -> Any:
        """The notebook's section of the parameter file."""
        return getattr(self.params, NOTEBOOK_SECTIONS[self.notebook])

    @property
    def spec(self) -> Any:
        """The funnel spec."""
        return self.data.spec

    @property
    def cutoff_month(self) -> pd.Timestamp:
        """First day of the last observed month."""
        return self.data.cutoff_month

    @property
    def level(self) -> float:
        """Central interval level of rates and bands."""
        return float(self.params.interval_level)

    @property
    def seed(self) -> int:
        """Seed of every simulation."""
        return int(self.params.seed)

    @property
    def model_label(self) -> str:
        """Which model produced the numbers (the model's description and the variant it chose)."""
        return self.model.describe()

    @cached_property
    def transitions(self) -> pd.DataFrame | None:
        """Monthly transitions by the model's factors (None for aggregate counts)."""
        if not self.data.has_leads:
            return None
        return self.data.transitions(self.factors)

    @cached_property
    def counts(self) -> pd.DataFrame:
        """``month, stage, count, change, pct_change``: open leads at each month end and leads
        closed in the month (lead-level data), or the given monthly counts."""
        if self.data.has_leads:
            return derive.stage_counts(self.data.snapshots(), self.spec)
        c = self.data.counts.groupby(["month", "stage"], as_index=False)["count"].sum().sort_values(["stage", "month"])
        prev = c.groupby("stage")["count"].shift()
        return c.assign(change=c["count"] - prev, pct_change=100.0 * (c["count"] - prev) / prev.where(prev > 0))

    def new_leads_by_month(self) -> pd.Series:
        """Observed new leads per month (index: month start)."""
        if self.transitions is not None:
            t = self.transitions
            s = t[t["from_stage"] == ENTRY].groupby("month")["n"].sum()
        else:
            c = self.data.counts
            s = c[c["stage"] == self.spec.codes[0]].groupby("month")["count"].sum()
        s.index = pd.to_datetime(s.index)
        return s.sort_index()

    def leads(self, horizon: int, segment: Mapping[str, str] | None = None) -> float | np.ndarray:
        """New leads for forecast months 1..horizon: the ``new_leads`` plan, or inflow draws (n, horizon)."""
        if self.inflow is None:
            return float(self.params.new_leads if self.params.new_leads is not None else self.recent_leads())
        return self.inflow.forecast(int(horizon), segment=segment, seed=self.seed)

    def recent_leads(self) -> float:
        """Today's new leads per month: the mean of the last 3 observed months."""
        s = self.new_leads_by_month()
        return float(s.tail(3).mean()) if len(s) else 0.0

    @cached_property
    def cycle_months(self) -> float:
        """Typical months from a new lead's entry to its win (posterior median of the median)."""
        return self.post.typical_months_to_win()

    def expected_leads(self, horizon: int = 6) -> float:
        """Mean new leads per month over the coming ``horizon`` months (for sentences)."""
        v = self.leads(horizon)
        return float(np.mean(v))

    def leads_basis(self) -> str:
        """Where the new leads of forecasts and plans come from (one sentence)."""
        if self.inflow is not None:
            return ("new leads per month drawn from the inflow model (" + self.inflow.description +
                    "), so forecasts carry the uncertainty of the inflow")
        if self.params.new_leads is not None:
            return "new leads per month as given (parameter new_leads)"
        return "the mean new leads per month of the last 3 months"

    def posterior(self, segment: Mapping[str, str] | None = None, month: Any = None) -> PosteriorFunnel:
        """Posterior funnel of a segment (default all) and month (default the last)."""
        return self.model.posterior_funnel(segment, month=month, seed=self.seed)

    def clean_note(self, text: str) -> str:
        """A data warning as a report note: the source's name instead of '<DataFrame>', no machine paths."""
        name = Path(str(self.data.source)).name if self.data is not None else "data"
        return public_text(str(text).replace("<DataFrame>", name))


def _kept_factors(params: ParameterFile, data: Any, notes: list[str]) -> list[str]:
    kept = []
    for f in params.factors:
        if data.n_levels(f) < 2:
            notes.append(f"factor {f!r} has a single level after the filters and is left out of the model")
        else:
            kept.append(f)
    return kept


def _model_settings(params: ParameterFile, notebook: str) -> Any:
    settings = params.settings
    pc = params.process_change
    if notebook == "process_change" and pc.change_stage:
        cps = [c.model_dump() for c in settings.change_points if c.stage != pc.change_stage]
        cps.append({"stage": pc.change_stage, "month": pc.change_month, "name": pc.change_name})
        settings = type(settings).model_validate({**settings.model_dump(), "change_points": cps})
    return settings


def _fit_funnel(notebook: str, params: ParameterFile, data: Any, factors: list[str], progress: bool,
                cache_dir: Any) -> Any:
    from ..workflow import fit_model
    return fit_model(data, model=params.model, factors=factors, model_config=_model_settings(params, notebook),
                     sampler_config=params.sampler_settings(progress=progress), cache_dir=cache_dir,
                     progress=progress)


def _fit(ctx: Context, progress: bool, cache_dir: Any, inflow: bool) -> None:
    from ..workflow import fit_inflow
    p = ctx.params
    ctx.model = _fit_funnel(ctx.notebook, p, ctx.data, ctx.factors, progress, cache_dir)
    ctx.pipeline = ctx.model.pipeline(ctx.data)
    ctx.post = ctx.posterior()
    if inflow and p.new_leads is None:
        ctx.inflow = fit_inflow(ctx.data, p, factors=ctx.factors, progress=progress, cache_dir=cache_dir)


def prepare(notebook: str, params: ParameterFile, *, progress: bool = False,
            cache_dir: str | Path | None = None, inflow: bool = True) -> Context:
    """Load the data and fit the models of a report run.

    Parameters
    ----------
    notebook : str
        ``monthly_report``, ``lead_planning``, ``process_change`` or ``backtest`` (which
        fits per cut-off later and skips the fit here).
    params : ParameterFile
        Validated parameters (run :func:`funnel_models.preflight.preflight` first).
    progress : bool
        Show the sampler's progress bar.
    cache_dir : path, optional
        Fit cache folder (default ``$FUNNEL_CACHE_DIR`` or ``~/.cache/funnel_models``).
    inflow : bool
        Fit the inflow model when ``new_leads`` is not given (``funnel fit`` does not
        need it; without it new leads default to the mean of the last 3 months).

    Returns
    -------
    Context
        FunnelWarnings raised on the way are in ``notes``.
    """
    from ..workflow import load_params_data
    p = params
    ctx = Context(notebook=notebook, params=p, data=None)
    ctx.data = capture(ctx.notes, load_params_data, p)
    ctx.factors = _kept_factors(p, ctx.data, ctx.notes)
    if notebook not in _NO_MODEL:
        capture(ctx.notes, _fit, ctx, progress, cache_dir, inflow)
        ctx.notes.extend(n for n in ctx.model.diagnostics(warn=False).notes if n not in ctx.notes)
    ctx.summary = _summary_start(ctx)
    return ctx


def prefit(notebook: str, params: ParameterFile, *, cache_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Fit the model a report of ``notebook`` fits (or find it in the fit cache), in this process.

    A batch of reports fits here first, one file after the other, so fits of one model
    structure reuse this process's compiled graph; the notebooks then load the fits from
    the fit cache. Returns the model's :meth:`fit_info` (timings, ``graphs``, ``reused``,
    ``cache_load``), or None when the notebook fits no model here.
    """
    from ..workflow import load_params_data
    if notebook in _NO_MODEL:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # the notebook run reports them
        data = load_params_data(params)
        model = _fit_funnel(notebook, params, data, _kept_factors(params, data, []), False, cache_dir)
    return model.fit_info()


def _summary_start(ctx: Context) -> dict[str, Any]:
    d = ctx.data
    data = {"source": public_text(str(d.source)), "kind": d.kind, "cutoff": str(d.cutoff.date()),
            "cutoff_month": month_label(ctx.cutoff_month), "leads": d.n_leads(), "factors": list(ctx.factors)}
    if ctx.model is not None:
        data.update(model=ctx.model.name, model_description=ctx.model_label,
                    open_pipeline=int(ctx.pipeline["count"].sum() if "count" in ctx.pipeline else len(ctx.pipeline)),
                    new_leads_per_month=ctx.expected_leads(),
                    new_leads_from="inflow model" if ctx.inflow is not None else "parameter new_leads")
    return {"notebook": ctx.notebook, "generated_at": _dt.datetime.now().isoformat(timespec="seconds"),
            "parameters": ctx.params.model_dump(mode="json"), "data": data}


def notebook_values(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters from its variables (``globals()``): exactly the keys of
    :func:`~funnel_models.params.notebook_parameters`, so the parameters cell stays the
    one list of them."""
    keys = notebook_parameters(ParameterFile(source="demo"), notebook)
    missing = sorted(k for k in keys if k not in namespace)
    if missing:
        from ..errors import ParameterError
        raise ParameterError(f"notebook {notebook}: the parameters cell does not define {missing}")
    return {k: namespace[k] for k in keys}
