"""Interactive what-if dashboard (ipywidgets) on top of the simulator.

:class:`WhatIfDashboard` is deliberately thin: every control is mapped to simulator
arguments and every number shown comes from :mod:`funnel_models.simulate`:

=====================================  =================================================
output                                 simulator call
=====================================  =================================================
leads needed, naive spreadsheet plan,  ``simulate.leads_needed(post, target, window,
P(hit) curve                           pipeline=, confidence=, target_unit=, seed=)``
P(hit) with the planned leads          ``leads_needed(...).problem.probability(planned)``,
                                       i.e. ``simulate.planning.plan_problem(post,
                                       target, window, pipeline=, target_unit=, seed=)
                                       .probability(planned_leads)``: the computation
                                       behind the curve, so the point lies on it
forecast fan chart                     ``simulate.forecast(post.thin(forecast_draws),
                                       pipeline, planned_leads, horizon=window, seed=,
                                       sims_per_draw=1)`` summarised with
                                       ``simulate.intervals`` (cumulative wins/revenue)
bottleneck ranking                     ``simulate.leverage(post.thin(leverage_draws),
                                       pipeline, planned_leads, horizon=window)``
=====================================  =================================================

where ``post = model.posterior_funnel(segment).thin(draws, seed).adjust(conversion=...,
stall=...)``. The thinned base posterior is cached per segment (so a segment change costs
one ``posterior_funnel`` call the first time), the open pipeline is filtered per segment
(on the attribute columns of ``derive.open_pipeline``), and each simulator result is cached
by its own arguments, so a control change only reruns the calls whose arguments changed
(the target and confidence never rerun the forecast; the planned leads never rerun the
leads-needed search).

Speed versus precision: ``draws`` (default 1000) feed the headline numbers (leads needed,
P(hit), naive plan, curve). The fan chart uses ``forecast_draws`` (default 300) simulated
futures and the bottleneck ranking ``leverage_draws`` (default 200) draws: the Monte Carlo
forecast costs about 80 ms for 1000 futures over 12 months, which alone would break the
100 ms budget for a control change; 300 futures draw a fan that is visually stable, and
the ranking (exact expectations, no Monte Carlo noise) only needs the mean effects.
``benchmarks/bench_dashboard.py`` measures the recompute latency.

Parameters (``WhatIfDashboard.from_params(path)``)
--------------------------------------------------
A YAML mapping; every key is optional (defaults in :data:`DEFAULT_PARAMS`):

``source`` (``"demo"``), ``spec``, ``mapping``, ``filters``, ``start``, ``end``,
``cutoff`` -- passed to :func:`funnel_models.workflow.load_data`; ``factors`` (segment
dropdowns; default: the demo's ``region`` and ``channel``, none otherwise), ``quick``
(default **True**: the exact conjugate model fits in about a second, so the dashboard
starts instantly; ``False`` fits -- or loads from the cache -- the MCMC model),
``sampler_config``, ``cache_dir`` -- passed to :func:`funnel_models.workflow.fit_model`;
``target`` (default: 5% above the expected wins with the recent lead volume),
``target_unit`` (``wins`` | ``revenue``), ``window`` (months, default 12), ``confidence``
(0.8), ``leads`` (planned new leads per month; default the mean of the last 3 months),
``draws`` (1000), ``forecast_draws`` (300), ``leverage_draws`` (200), ``seed`` (0),
``title``.
Relative paths (``source``, ``spec``, ``cache_dir``) are resolved against ``base_dir``
(default: the current directory; ``funnel dashboard`` passes the directory it was
started from). ``change_points`` go to ``fit_model`` (MCMC only).

Report parameter files (``parameters/*.yaml`` of :mod:`funnel_models.reports.params`) are
accepted too: ``extends:`` chains are merged with that module's ``load_layers``,
``target_wins``/``window_months``/``new_leads``/``segment_filters`` become
``target``/``window``/``leads``/``filters``, their ``draws``/``tune``/``chains`` go to the
MCMC ``sampler_config``, and report-only keys (``benchmarks``, ``horizon``, ...) are
ignored. There is no what-if schema in that module (yet), so the checks here are
:func:`load_params`' own.

Examples
--------
>>> from funnel_models.workflow import load_data, fit_model
>>> data = load_data("demo", demo_months=12)
>>> model = fit_model(data, quick=True, factors=["region"])
>>> dash = WhatIfDashboard(model, data=data, target=40, window=6, leads=100, draws=200)
>>> dash.target.value = 50
>>> dash.state.plan.target
50.0
"""
from __future__ import annotations

import html
import math
import os
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .charts import FAN_LEVELS, fmt_number, forecast_fan_svg, p_hit_curve_svg
from ..errors import ParameterError
from ..posterior import PosteriorFunnel

__all__ = ["WhatIfDashboard", "DashboardState", "DEFAULT_PARAMS", "load_params", "find_repo_file"]

#: Defaults of a what-if parameter file (see the module docstring).
DEFAULT_PARAMS: dict[str, Any] = {
    "source": "demo", "spec": None, "mapping": None, "filters": None, "start": None, "end": None,
    "cutoff": None, "factors": None, "quick": True, "sampler_config": None, "cache_dir": None,
    "target": None, "target_unit": "wins", "window": 12, "confidence": 0.8, "leads": None,
    "draws": 1000, "forecast_draws": 300, "leverage_draws": 200, "seed": 0, "title": None,
    "change_points": None,
}
_DEMO_FACTORS = ["region", "channel"]
_CONV_RANGE = (0.5, 1.5)
_STALL_RANGE = (0.25, 2.0)


# ----------------------------------------------------------------------------- parameters
def find_repo_file(relative: str | Path, start: str | Path | None = None) -> Path:
    """Locate a repository file such as ``notebooks/what_if.ipynb``.

    Looks in the current directory (or ``start``) and its parents first, then next to
    the installed package (``<package>/..``, i.e. the repository root of an editable
    install). Raises :class:`ParameterError` naming the places searched.
    """
    rel = Path(relative)
    here = Path(start or os.getcwd()).resolve()
    candidates = [d / rel for d in (here, *here.parents)]
    candidates.append(Path(__file__).resolve().parents[2] / rel)
    for c in candidates:
        if c.exists():
            return c
    raise ParameterError(f"cannot find {rel}: looked in {here} and its parents and next to the package "
                         f"({Path(__file__).resolve().parents[2]}); run from the repository root")


def load_params(path: str | Path | None = None, *, base_dir: str | Path | None = None) -> dict[str, Any]:
    """Read a what-if parameter file into a dict completed with :data:`DEFAULT_PARAMS`.

    ``path=None`` gives the defaults (demo data, quick mode). Unknown keys are an error.
    """
    params = dict(DEFAULT_PARAMS)
    if path is None:
        return params
    p = Path(path)
    if not p.exists():
        raise ParameterError(f"parameter file {p} does not exist")
    raw = _read_yaml_layers(p)
    if isinstance(raw.get("parameters"), Mapping):  # nested form: {parameters: {...}}
        raw = {**{k: v for k, v in raw.items() if k != "parameters"}, **raw["parameters"]}
    raw = _translate_report_keys(raw)
    unknown = sorted(set(raw) - set(DEFAULT_PARAMS))
    if unknown:
        raise ParameterError(f"{p}: unknown key(s) {unknown}; known keys are {sorted(DEFAULT_PARAMS)}")
    params.update({k: v for k, v in raw.items() if k in DEFAULT_PARAMS})
    base = Path(base_dir) if base_dir else Path.cwd()
    for key in ("source", "spec", "cache_dir"):
        v = params.get(key)
        if isinstance(v, str) and v not in ("demo", "olist") and not Path(v.split("::")[0]).is_absolute():
            params[key] = str(base / v)
    _check_params(params, p)
    return params


#: Keys of report parameter files (funnel_models.reports.params) and their what-if names.
_REPORT_KEYS = {"target_wins": "target", "window_months": "window", "new_leads": "leads",
                "segment_filters": "filters"}
#: Report keys without a what-if meaning (ignored, so a report file can start the dashboard).
_REPORT_ONLY = {"notebook", "extends", "name", "description", "horizon", "benchmarks", "warning_level",
                "interval_level", "summary_path", "period", "periods", "plan_by", "segment_targets",
                "change_stage", "change_month", "change_name"}
#: Report keys that configure the MCMC sampler (report ``draws`` are sampler draws).
_SAMPLER_KEYS = ("draws", "tune", "chains")


def _read_yaml_layers(p: Path) -> dict[str, Any]:
    """The file's mapping; ``extends:`` chains are merged with the report loader when present."""
    try:
        from ..reports.params import load_layers
    except ImportError:
        load_layers = None
    if load_layers is not None:
        merged: dict[str, Any] = {}
        for _file, data in load_layers(p):
            merged.update(data)
        return merged
    import yaml
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ParameterError(f"{p}: a parameter file must be a mapping of key: value, got {type(raw).__name__}")
    return dict(raw)


def _translate_report_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Accept report parameter files: rename their keys, move sampler keys, drop report-only keys."""
    is_report = "notebook" in raw or any(k in raw for k in _REPORT_KEYS)
    out: dict[str, Any] = {}
    sampler = dict(raw.get("sampler_config") or {})
    for k, v in raw.items():
        if k in _REPORT_ONLY or k == "title" and is_report:
            continue
        if is_report and k in _SAMPLER_KEYS:
            sampler[k] = v
            continue
        out[_REPORT_KEYS.get(k, k)] = v
    if sampler:
        out["sampler_config"] = sampler
    return out


def _check_params(params: Mapping[str, Any], where: object) -> None:
    def bad(key: str, why: str) -> ParameterError:
        return ParameterError(f"{where}: {key}={params[key]!r} {why}")
    if params["target_unit"] not in ("wins", "revenue"):
        raise bad("target_unit", "must be 'wins' or 'revenue'")
    if not isinstance(params["window"], int) or params["window"] < 1:
        raise bad("window", "must be a whole number of months >= 1")
    c = params["confidence"]
    if not isinstance(c, (int, float)) or not 0 < c < 1:
        raise bad("confidence", "must lie strictly between 0 and 1, e.g. 0.8")
    for key in ("draws", "forecast_draws", "leverage_draws"):
        if not isinstance(params[key], int) or params[key] < 1:
            raise bad(key, "must be an int >= 1")
    for key in ("target", "leads"):
        v = params[key]
        if v is not None and (not isinstance(v, (int, float)) or v < 0):
            raise bad(key, "must be a number >= 0 (or left out for the default)")
    if params["factors"] is not None and not isinstance(params["factors"], (list, tuple)):
        raise bad("factors", "must be a list of attribute columns")


# ----------------------------------------------------------------------------- state
@dataclass
class DashboardState:
    """The simulator arguments and results behind what the dashboard shows.

    Attributes
    ----------
    segment : dict
        factor -> level (factors at "all" are left out).
    conversion, stall : dict
        Stage multipliers different from 1 (passed to ``PosteriorFunnel.adjust``).
    target, target_unit, window, confidence, leads :
        The control values as simulator arguments (``window`` is ``T``: months 1..T).
    post : PosteriorFunnel
        The adjusted, thinned posterior the simulator was called with.
    plan : LeadsNeededResult or None
    p_hit : float
        P(hit the target) with ``leads`` new leads per month.
    forecast : ForecastResult or None
    leverage : DataFrame or None
    error : str or None
        Message shown when the simulator refused the question.
    seconds : float
        Duration of the last recompute, rendering included.
    meta : dict
        ``timings``: seconds per simulator call that ran (cache misses only);
        ``compute_seconds``: the simulator part of ``seconds``.
    """

    segment: dict
    conversion: dict
    stall: dict
    target: float
    target_unit: str
    window: int
    confidence: float
    leads: int
    post: PosteriorFunnel | None = None
    plan: Any = None
    p_hit: float = float("nan")
    forecast: Any = None
    leverage: Any = None
    error: str | None = None
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)


class _LRU(OrderedDict):
    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


_CSS = """
<style>
.funnel-dashboard { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2933;
  max-width: 1400px; }
.funnel-dashboard .widget-label, .funnel-dashboard .widget-readout { font-size: 13px; }
.funnel-header h2 { margin: 4px 0 2px 0; font-size: 20px; }
.funnel-header .sub { color: #52606d; font-size: 13px; }
.funnel-controls { background: #f5f7fa; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 10px; }
.funnel-controls h4 { margin: 8px 0 4px 0; font-size: 13px; text-transform: uppercase; letter-spacing: .04em;
  color: #52606d; }
.funnel-kpi { background: white; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 14px; min-height: 86px; }
.funnel-kpi .kpi-label { color: #52606d; font-size: 13px; }
.funnel-kpi .kpi-value { font-size: 30px; font-weight: 600; line-height: 1.25; }
.funnel-kpi .kpi-note { color: #52606d; font-size: 12px; }
.funnel-kpi.good .kpi-value { color: #1f7a4d; }
.funnel-kpi.bad .kpi-value { color: #b42318; }
.funnel-svg { width: 100%; height: auto; font-size: 12px; fill: #3e4c59;
  font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.funnel-svg .svg-title { font-size: 14px; font-weight: 600; fill: #1f2933; }
.funnel-chart { background: white; border: 1px solid #e4e7eb; border-radius: 8px; padding: 4px; }
.funnel-leverage table { border-collapse: collapse; width: 100%; font-size: 13px; }
.funnel-leverage th { text-align: left; color: #52606d; font-weight: 600; border-bottom: 1px solid #cbd2d9; padding: 3px 6px; }
.funnel-leverage td { border-bottom: 1px solid #eef0f2; padding: 3px 6px; }
.funnel-leverage td.num { text-align: right; font-variant-numeric: tabular-nums; }
.funnel-leverage tr.top td { font-weight: 600; background: #fff8e6; }
.funnel-message { color: #3e4c59; font-size: 13px; }
.funnel-error { color: #b42318; font-size: 13px; font-weight: 600; }
.funnel-status { color: #52606d; font-size: 12px; }
.funnel-status.busy { color: #b45309; font-weight: 600; }
</style>
"""


# ----------------------------------------------------------------------------- dashboard
class WhatIfDashboard:
    """What-if dashboard: controls -> simulator arguments -> simulator -> outputs.

    Parameters
    ----------
    model :
        A fitted model: anything with ``posterior_funnel(segment)`` (``ConjugateFunnel``,
        ``FunnelModel``). Segment levels come from ``model.structure.factors`` unless
        ``segments`` is given.
    data : LoadedData, optional
        Gives the open pipeline (``data.pipeline()``) and the label.
    pipeline : DataFrame or mapping, optional
        Open pipeline at the cut-off (overrides ``data``); a frame from
        ``derive.open_pipeline`` is filtered per segment on its attribute columns; a
        mapping stage -> count is used as is for every segment.
    segments : mapping factor -> levels, optional
        One dropdown per factor ("all" plus the levels).
    target, target_unit, window, confidence, leads :
        Initial (and reset) control values. ``target=None``: 5% above the expected wins
        (``simulate.expected_wins``) in the window with ``leads``; ``leads=None``: the
        recent monthly volume (``simulate.leads_from_history`` of the model's
        transitions), else 100.
    draws : int
        Posterior draws kept per segment (``PosteriorFunnel.thin``); used for leads
        needed, P(hit) and the curve.
    forecast_draws : int
        Draws (one simulated future each) behind the fan chart.
    leverage_draws : int
        Draws used for the bottleneck ranking (exact expectations per draw).
    seed : int
        Seed of thinning and of every simulator call.
    debug : bool
        Show tracebacks in the error line (default: ``FUNNEL_DEBUG`` env var).

    Attributes
    ----------
    widget : ipywidgets.Widget
        The whole dashboard (displaying the object displays it).
    state : DashboardState
        Arguments and results of the last recompute.
    """

    def __init__(self, model: Any, *, data: Any = None, pipeline: Any = None,
                 segments: Mapping[str, Sequence[str]] | None = None, target: float | None = None,
                 target_unit: str = "wins", window: int = 12, confidence: float = 0.8,
                 leads: float | None = None, draws: int = 1000, forecast_draws: int = 300,
                 leverage_draws: int = 200, seed: int = 0,
                 title: str | None = None, debug: bool | None = None) -> None:
        if not hasattr(model, "posterior_funnel"):
            raise ParameterError(f"model must offer posterior_funnel(segment); got {type(model).__name__}")
        self.model = model
        self.data = data
        self.draws, self.seed = int(draws), int(seed)
        self.forecast_draws, self.leverage_draws = int(forecast_draws), int(leverage_draws)
        self.debug = bool(os.environ.get("FUNNEL_DEBUG")) if debug is None else bool(debug)
        self._pipeline_all = pipeline if pipeline is not None else (data.pipeline() if data is not None else None)
        if segments is None:
            st = getattr(model, "structure", None)
            segments = dict(getattr(st, "factors", {}) or {})
        self.segments = {str(f): [str(v) for v in lv] for f, lv in segments.items()}
        self._posts = _LRU(64)
        self._pipes = _LRU(64)
        self._results = _LRU(64)
        self.title = title or "What-if: leads needed to hit a target"
        base = self.base_posterior({})
        self.stages = list(base.stages)
        self.stage_names = list(base.names) if base.names else list(base.stages)
        self._has_value = bool(np.all(np.isfinite(base.deal_value)) and np.all(base.deal_value > 0))
        if target_unit not in ("wins", "revenue"):
            raise ParameterError(f"target_unit must be 'wins' or 'revenue', got {target_unit!r}")
        if target_unit == "revenue" and not self._has_value:
            raise ParameterError("target_unit='revenue' needs deal values; the data has none. Use 'wins'.")
        if leads is None:
            leads = self._history_leads()
        leads = int(round(float(leads)))
        if target is None:
            target = self._default_target(base, leads, int(window), target_unit)
        self.defaults = {"target": float(target), "target_unit": target_unit, "window": int(window),
                         "confidence": float(confidence), "leads": leads}
        self._suspend = 0
        self._build()
        self.recompute()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, path: str | Path | None = None, *, base_dir: str | Path | None = None,
                    **overrides: Any) -> "WhatIfDashboard":
        """Load data, fit (quick) or load the cached (MCMC) model, and build the dashboard.

        ``path=None`` uses :data:`DEFAULT_PARAMS` (the demo data in quick mode).
        ``overrides`` replace parameter values (e.g. ``draws=500``).
        """
        from ..workflow import fit_model, load_data
        params = load_params(path, base_dir=base_dir)
        params.update(overrides)
        _check_params(params, path or "parameters")
        data = load_data(params["source"], spec=params["spec"], mapping=params["mapping"],
                         filters=params["filters"], start=params["start"], end=params["end"],
                         cutoff=params["cutoff"])
        factors = params["factors"]
        if factors is None:
            factors = [f for f in _DEMO_FACTORS if f in data.history.columns] if params["source"] == "demo" else []
        model = fit_model(data, quick=bool(params["quick"]), factors=factors,
                          change_points=params["change_points"] or (),
                          sampler_config=params["sampler_config"], cache_dir=params["cache_dir"])
        title = params["title"] or f"What-if: {data.source if data.source in ('demo', 'olist') else Path(data.source).name}"
        dash = cls(model, data=data, target=params["target"], target_unit=params["target_unit"],
                   window=params["window"], confidence=params["confidence"], leads=params["leads"],
                   draws=params["draws"], forecast_draws=params["forecast_draws"],
                   leverage_draws=params["leverage_draws"], seed=params["seed"],
                   title=title)
        dash.params = params
        return dash

    def _history_leads(self) -> float:
        from ..simulate import leads_from_history
        tr = getattr(getattr(self.model, "data", None), "transitions", None)
        if tr is None:
            return 100.0
        try:
            return leads_from_history(tr)
        except Exception:
            return 100.0

    def _default_target(self, post: PosteriorFunnel, leads: int, window: int, unit: str) -> float:
        from ..simulate import expected_wins
        wins = float(expected_wins(post, self.pipeline_for({}), leads, window).sum(1).mean())
        value = wins * (float(np.mean(post.deal_value)) if unit == "revenue" else 1.0)
        goal = 1.05 * value
        step = 10 ** max(0, math.floor(math.log10(max(goal, 1.0))) - 1)
        return float(math.ceil(goal / step) * step)  # 2 significant digits, rounded up

    # ------------------------------------------------------------------ cached inputs
    def base_posterior(self, segment: Mapping[str, str]) -> PosteriorFunnel:
        """The thinned posterior of a segment (cached): ``posterior_funnel(segment).thin(draws)``."""
        key = tuple(sorted(segment.items()))
        return self._posts.get_or(key, lambda: self.model.posterior_funnel(dict(segment) or None)
                                  .thin(self.draws, seed=self.seed))

    def pipeline_for(self, segment: Mapping[str, str]) -> Any:
        """The open pipeline of a segment: the frame's rows whose attributes match (cached)."""
        pipe = self._pipeline_all
        if not segment or not isinstance(pipe, pd.DataFrame):
            return pipe
        key = tuple(sorted(segment.items()))

        def make() -> pd.DataFrame:
            missing = [f for f in segment if f not in pipe.columns]
            if missing:
                raise ParameterError(f"the pipeline has no column(s) {missing} to filter the segment on")
            mask = np.ones(len(pipe), dtype=bool)
            for f, lv in segment.items():
                mask &= pipe[f].astype(str).to_numpy() == lv
            return pipe.loc[mask].reset_index(drop=True)
        return self._pipes.get_or(key, make)

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        import ipywidgets as W
        d = self.defaults
        full = W.Layout(width="100%")
        sty = {"description_width": "118px"}
        self.target_unit = W.ToggleButtons(options=[("Wins", "wins"), ("Revenue", "revenue")], value=d["target_unit"],
                                           description="Target in", style={"description_width": "118px",
                                                                           "button_width": "84px"})
        if not self._has_value:
            self.target_unit.disabled = True
            self.target_unit.tooltip = "the data has no deal values"
        self.target = W.BoundedFloatText(value=d["target"], min=0, max=1e12, step=1, description="Target",
                                         style=sty, layout=full)
        self.window = W.IntSlider(value=d["window"], min=1, max=max(24, d["window"]), description="Window (months)",
                                  style=sty, layout=full, continuous_update=False)
        self.confidence = W.FloatSlider(value=d["confidence"], min=0.5, max=0.99, step=0.01, readout_format=".2f",
                                        description="Confidence", style=sty, layout=full, continuous_update=False)
        self.leads = W.BoundedIntText(value=d["leads"], min=0, max=1_000_000, description="Planned leads / mo",
                                      style=sty, layout=full)
        self.segment_controls = {f: W.Dropdown(options=["all", *lv], value="all", description=f, style=sty, layout=full)
                                 for f, lv in self.segments.items()}
        self.conversion = {s: W.FloatSlider(value=1.0, min=_CONV_RANGE[0], max=_CONV_RANGE[1], step=0.05,
                                            description=f"{s} ×", readout_format=".2f", style={"description_width": "70px"},
                                            layout=full, continuous_update=False, tooltip=n)
                           for s, n in zip(self.stages, self.stage_names)}
        self.stall = {s: W.FloatSlider(value=1.0, min=_STALL_RANGE[0], max=_STALL_RANGE[1], step=0.05,
                                       description=f"{s} ×", readout_format=".2f", style={"description_width": "70px"},
                                       layout=full, continuous_update=False, tooltip=n)
                      for s, n in zip(self.stages, self.stage_names)}
        self.reset = W.Button(description="Reset", icon="undo", tooltip="restore the starting values",
                              layout=W.Layout(width="120px"))
        # outputs
        self.header = W.HTML()
        self.status = W.HTML()
        self.leads_needed_out = W.HTML(layout=W.Layout(flex="1 1 0", min_width="180px"))
        self.p_hit_out = W.HTML(layout=W.Layout(flex="1 1 0", min_width="180px"))
        self.naive_out = W.HTML(layout=W.Layout(flex="1 1 0", min_width="180px"))
        self.curve_out = W.HTML(layout=W.Layout(flex="1 1 0", min_width="320px"))
        self.fan_out = W.HTML(layout=W.Layout(flex="1 1 0", min_width="320px"))
        self.leverage_out = W.HTML(layout=full)
        self.message = W.HTML(layout=full)
        self.error = W.HTML(layout=full)
        classes = {
            self.target: "funnel-target", self.target_unit: "funnel-target-unit", self.window: "funnel-window",
            self.confidence: "funnel-confidence", self.leads: "funnel-leads", self.reset: "funnel-reset",
            self.leads_needed_out: "funnel-leads-needed", self.p_hit_out: "funnel-p-hit",
            self.naive_out: "funnel-naive", self.curve_out: "funnel-curve", self.fan_out: "funnel-fan",
            self.leverage_out: "funnel-leverage", self.message: "funnel-message", self.error: "funnel-error",
            self.status: "funnel-status", self.header: "funnel-header",
        }
        for w, c in classes.items():
            w.add_class(c)
        for w in (self.leads_needed_out, self.p_hit_out, self.naive_out):
            w.add_class("funnel-kpi")
        for w in (self.curve_out, self.fan_out):
            w.add_class("funnel-chart")
        for f, w in self.segment_controls.items():
            w.add_class("funnel-segment")
            w.add_class(f"funnel-segment-{f}")
        for s in self.stages:
            self.conversion[s].add_class(f"funnel-conversion-{s}")
            self.stall[s].add_class(f"funnel-stall-{s}")

        def h(text: str) -> Any:
            return W.HTML(f"<h4>{html.escape(text)}</h4>")
        stage_box = W.Accordion(children=[
            W.VBox([W.HTML('<span class="funnel-message">Multiply each stage\'s conversion '
                           '(share moving on rather than lost).</span>'), *self.conversion.values()]),
            W.VBox([W.HTML('<span class="funnel-message">Multiply the months prospects stay in each stage '
                           '(0.5 = half).</span>'), *self.stall.values()]),
        ], selected_index=0, layout=full)
        stage_box.set_title(0, "Conversion multipliers")
        stage_box.set_title(1, "Stall multipliers")
        control_children = [h("Target"), self.target_unit, self.target, self.window, self.confidence,
                            h("Plan"), self.leads]
        if self.segment_controls:
            control_children += [h("Segment"), *self.segment_controls.values()]
        control_children += [h("Stage assumptions"), stage_box, W.HBox([self.reset], layout=W.Layout(margin="8px 0 0 0"))]
        controls = W.VBox(control_children, layout=W.Layout(width="340px", min_width="300px", flex="0 0 340px"))
        controls.add_class("funnel-controls")
        kpis = W.HBox([self.leads_needed_out, self.p_hit_out, self.naive_out],
                      layout=W.Layout(width="100%", grid_gap="10px", flex_flow="row wrap"))
        charts = W.HBox([self.curve_out, self.fan_out],
                        layout=W.Layout(width="100%", grid_gap="10px", flex_flow="row wrap"))
        outputs = W.VBox([kpis, self.error, self.message, charts,
                          W.HTML("<h4 style='margin:8px 0 2px 0'>Where to act: extra wins per month "
                                 "from improving one stage (under the current assumptions)</h4>"),
                          self.leverage_out],
                         layout=W.Layout(flex="1 1 0", min_width="0", grid_gap="8px", padding="0 0 0 12px"))
        top = W.HBox([self.header, self.status], layout=W.Layout(justify_content="space-between",
                                                                    align_items="flex-end", width="100%"))
        self.widget = W.VBox([W.HTML(_CSS), top, W.HBox([controls, outputs], layout=W.Layout(width="100%"))],
                             layout=W.Layout(width="100%"))
        self.widget.add_class("funnel-dashboard")
        # observers
        for w in (self.target, self.window, self.confidence, self.leads, *self.conversion.values(),
                  *self.stall.values()):
            w.observe(self._on_change, names="value")
        for w in self.segment_controls.values():
            w.observe(self._on_segment, names="value")
        self.target_unit.observe(self._on_unit, names="value")
        self.reset.on_click(lambda _b: self.reset_controls())

    # ------------------------------------------------------------------ events
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Change several controls with one recompute at the end."""
        self._suspend += 1
        try:
            yield
        finally:
            self._suspend -= 1
        if not self._suspend:
            self.recompute()

    def _on_change(self, _change: Any = None) -> None:
        if not self._suspend:
            self.recompute()

    def _on_segment(self, _change: Any = None) -> None:
        if self._suspend:
            return
        seg = self.current_segment()
        label = ", ".join(f"{k}={v}" for k, v in seg.items()) or "all leads"
        cached = tuple(sorted(seg.items())) in self._posts
        self._set_status(f"⏳ {'Recomputing' if cached else 'Drawing the posterior'} for {label}…", busy=True)
        self.recompute()

    def _on_unit(self, change: Any) -> None:
        """Convert the target between wins and revenue with the mean deal value."""
        if self._suspend:
            return
        value = float(np.mean(self.base_posterior(self.current_segment()).deal_value))
        t = float(self.target.value)
        new = t * value if change["new"] == "revenue" else t / value
        step = 10 ** max(0, math.floor(math.log10(max(new, 1.0))) - 2)
        with self.batch():
            self.target.value = float(round(new / step) * step)

    def reset_controls(self) -> None:
        """Restore every control to its starting value (one recompute)."""
        d = self.defaults
        with self.batch():
            self.target_unit.value = d["target_unit"]
            self.target.value = d["target"]
            self.window.value = d["window"]
            self.confidence.value = d["confidence"]
            self.leads.value = d["leads"]
            for w in self.segment_controls.values():
                w.value = "all"
            for w in (*self.conversion.values(), *self.stall.values()):
                w.value = 1.0

    def current_segment(self) -> dict[str, str]:
        """factor -> level of the dropdowns not at "all"."""
        return {f: w.value for f, w in self.segment_controls.items() if w.value != "all"}

    def simulator_args(self) -> dict[str, Any]:
        """The simulator arguments the current controls map to."""
        conv = {s: float(w.value) for s, w in self.conversion.items() if float(w.value) != 1.0}
        stall = {s: float(w.value) for s, w in self.stall.items() if float(w.value) != 1.0}
        seg = self.current_segment()
        return {"segment": seg, "conversion": conv, "stall": stall, "target": float(self.target.value),
                "target_unit": self.target_unit.value, "window": int(self.window.value),
                "confidence": float(self.confidence.value), "leads": int(self.leads.value),
                "pipeline": self.pipeline_for(seg), "seed": self.seed}

    # ------------------------------------------------------------------ recompute
    def recompute(self) -> DashboardState:
        """Map the controls to simulator calls (cached by arguments) and refresh the outputs."""
        from .. import simulate as S
        from ..simulate.planning import plan_problem
        t0 = time.perf_counter()
        a = self.simulator_args()
        seg_key = tuple(sorted(a["segment"].items()))
        adj_key = (seg_key, tuple(sorted(a["conversion"].items())), tuple(sorted(a["stall"].items())))
        st = DashboardState(segment=a["segment"], conversion=a["conversion"], stall=a["stall"], target=a["target"],
                            target_unit=a["target_unit"], window=a["window"], confidence=a["confidence"],
                            leads=a["leads"])
        pipe, T, seed, L = a["pipeline"], a["window"], self.seed, a["leads"]
        timings: dict[str, float] = {}

        def get(name: str, key: tuple, make: Callable[[], Any]) -> Any:
            if (name, key) in self._results:
                return self._results.get_or((name, key), make)
            t = time.perf_counter()
            out = self._results.get_or((name, key), make)
            timings[name] = time.perf_counter() - t
            return out
        try:
            base = self.base_posterior(a["segment"])
            post = get("adjust", adj_key, lambda: base.adjust(conversion=a["conversion"], stall=a["stall"]))
            st.post = post
            q = (adj_key, a["target"], a["target_unit"], T)
            st.plan = get("leads_needed", (q, a["confidence"]), lambda: S.leads_needed(
                post, a["target"], T, pipeline=pipe, confidence=a["confidence"], target_unit=a["target_unit"],
                seed=seed))
            prob = getattr(st.plan, "problem", None)  # the search's own PlanProblem (same seed)
            if prob is None:                           # older simulator without result.problem
                prob = get("plan_problem", q, lambda: plan_problem(
                    post, a["target"], T, pipeline=pipe, target_unit=a["target_unit"], seed=seed))
            st.p_hit = float(prob.probability(L)[0])
            if L > 0 or (pipe is not None and len(pipe) > 0):
                fc_post = get("thin_forecast", adj_key, lambda: post.thin(self.forecast_draws, seed=seed))
                st.forecast = get("forecast", (adj_key, L, T), lambda: S.forecast(
                    fc_post, pipe, L, T, seed=seed, sims_per_draw=1))
                st.meta["forecast_key"] = (adj_key, L, T)
            lev_post = get("thin_leverage", adj_key, lambda: post.thin(self.leverage_draws, seed=seed))
            st.leverage = get("leverage", (adj_key, L, T), lambda: S.leverage(lev_post, pipe, L, T, seed=seed))
            st.meta["leverage_key"] = (adj_key, L, T)
        except Exception as exc:  # shown in the dashboard, never as a bare traceback
            st.error = f"{type(exc).__name__}: {exc}"
            if self.debug:
                st.error += "\n" + traceback.format_exc()
        st.meta["compute_seconds"] = time.perf_counter() - t0
        st.meta["timings"] = timings
        self.state = st
        self._render(st)
        st.seconds = time.perf_counter() - t0
        self._set_status(f"Updated in {1000 * st.seconds:.0f} ms" if not st.error else
                         f"Error after {1000 * st.seconds:.0f} ms")
        return st

    # ------------------------------------------------------------------ rendering
    def _set_status(self, text: str, busy: bool = False) -> None:
        self.status.value = html.escape(text)
        (self.status.add_class if busy else self.status.remove_class)("busy")

    def _kpi(self, label: str, value: str, raw: float | None, note: str = "", tone: str = "") -> str:
        data = "" if raw is None or not np.isfinite(raw) else f' data-value="{raw:g}"'
        self_tone = f" {tone}" if tone else ""
        return (f'<div class="kpi{self_tone}"><div class="kpi-label">{html.escape(label)}</div>'
                f'<div class="kpi-value"{data}>{html.escape(value)}</div>'
                f'<div class="kpi-note">{html.escape(note)}</div></div>')

    def _render(self, st: DashboardState) -> None:
        unit = "wins" if st.target_unit == "wins" else "revenue"
        seg = ", ".join(f"{k}={v}" for k, v in st.segment.items()) or "all leads"
        src = getattr(self.data, "source", None)
        cut = getattr(self.data, "cutoff", None)
        sub = " · ".join(x for x in (f"data: {src}" if src else "", f"cut-off {pd.Timestamp(cut).date()}" if cut is not None else "",
                                     f"segment: {seg}", f"{self.draws} posterior draws") if x)
        self.header.value = f"<h2>{html.escape(self.title)}</h2><div class='sub'>{html.escape(sub)}</div>"
        for w in (self.leads_needed_out, self.p_hit_out, self.naive_out):
            w.remove_class("good")
            w.remove_class("bad")
        target_txt = f"{fmt_number(st.target)} {'wins' if unit == 'wins' else 'revenue'} by month {st.window}"
        if st.error or st.plan is None:
            self.error.value = f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(st.error or '')}</pre>"
            self.leads_needed_out.value = self._kpi("New leads / month needed", "–", None, target_txt)
            self.p_hit_out.value = self._kpi("P(hit) with the planned leads", "–", None)
            self.naive_out.value = self._kpi("Naive spreadsheet plan", "–", None)
            self.message.value = ""
            self.curve_out.value = self.fan_out.value = self.leverage_out.value = ""
            return
        self.error.value = ""
        plan = st.plan
        if plan.feasible:
            self.leads_needed_out.value = self._kpi(
                "New leads / month needed", f"{plan.leads:,}", plan.leads,
                f"{target_txt} with P ≥ {st.confidence:.0%} (P={plan.probability:.2f})")
        else:
            self.leads_needed_out.value = self._kpi("New leads / month needed", "not reachable", None, target_txt,
                                                    tone="bad")
            self.leads_needed_out.add_class("bad")
        ok = st.p_hit >= st.confidence
        self.p_hit_out.value = self._kpi("P(hit) with the planned leads", f"{st.p_hit:.0%}", round(st.p_hit, 4),
                                         f"{st.leads:,} new leads / month", tone="good" if ok else "bad")
        self.p_hit_out.add_class("good" if ok else "bad")
        if plan.naive_leads is None:
            self.naive_out.value = self._kpi("Naive spreadsheet plan", "–", None, "no win rate")
        else:
            self.naive_out.value = self._kpi(
                "Naive spreadsheet plan", f"{plan.naive_leads:,}", plan.naive_leads,
                f"target ÷ win rate {plan.naive_rate:.1%}; would hit with P={plan.naive_probability:.2f}")
        self.message.value = html.escape(plan.message[0].upper() + plan.message[1:]) + "."
        self.curve_out.value = self._curve_svg(st)
        self.fan_out.value = self._fan_svg(st)
        self.leverage_out.value = self._results.get_or(("leverage_html", st.meta.get("leverage_key")),
                                                       lambda: self._leverage_html(st))

    def _curve_svg(self, st: DashboardState) -> str:
        return p_hit_curve_svg(st.plan, st.leads, st.p_hit, st.confidence)

    def _fan_svg(self, st: DashboardState) -> str:
        from ..simulate import intervals
        fc = st.forecast
        if fc is None:
            return "<div class='funnel-message' style='padding:20px'>Nothing to forecast: no open pipeline " \
                   "and no planned leads.</div>"
        revenue = st.target_unit == "revenue"
        series = fc.revenue if revenue else fc.wins
        iv = self._results.get_or(("fan_intervals", st.meta.get("forecast_key"), revenue),
                                  lambda: intervals(np.cumsum(series, axis=1), FAN_LEVELS))
        return forecast_fan_svg(iv, fc.horizon, st.target, revenue=revenue)

    def _leverage_html(self, st: DashboardState, top: int = 6) -> str:
        lev = st.leverage
        if lev is None or lev.empty:
            return ""
        rows = []
        for r in lev.head(top).to_dict("records"):
            cls = " class='top'" if r["rank"] == 1 else ""
            rows.append(f"<tr{cls}><td class='num'>{int(r['rank'])}</td><td>{html.escape(str(r['name']))} "
                        f"<span style='color:#7b8794'>({html.escape(str(r['stage']))})</span></td>"
                        f"<td>{html.escape(str(r['lever']))}</td>"
                        f"<td class='num'>{r['extra_wins_mean']:+.1f}</td>"
                        f"<td class='num'>{r['extra_wins_lo']:+.1f} to {r['extra_wins_hi']:+.1f}</td>"
                        f"<td class='num'>{r['p_positive']:.0%}</td><td>{html.escape(str(r['focus']))}</td></tr>")
        return ("<table><thead><tr><th>#</th><th>stage</th><th>lever</th><th>extra wins / mo</th>"
                "<th>80% interval</th><th>P(&gt;0)</th><th></th></tr></thead><tbody>" + "".join(rows)
                + "</tbody></table>")

    # ------------------------------------------------------------------ display
    def snapshot_html(self) -> str:
        """A static HTML rendering of the current outputs (for papermill / exported notebooks)."""
        parts = [_CSS, "<div class='funnel-dashboard'>", f"<div class='funnel-header'>{self.header.value}</div>",
                 "<div style='display:flex;gap:10px;flex-wrap:wrap'>"]
        for w in (self.leads_needed_out, self.p_hit_out, self.naive_out):
            parts.append(f"<div class='funnel-kpi' style='flex:1 1 0;min-width:180px'>{w.value}</div>")
        parts.append("</div>")
        parts.append(f"<div class='funnel-error'>{self.error.value}</div><p class='funnel-message'>{self.message.value}</p>")
        parts.append("<div style='display:flex;gap:10px;flex-wrap:wrap'>")
        for w in (self.curve_out, self.fan_out):
            parts.append(f"<div class='funnel-chart' style='flex:1 1 0;min-width:320px'>{w.value}</div>")
        parts.append(f"</div><div class='funnel-leverage'>{self.leverage_out.value}</div></div>")
        return "".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
