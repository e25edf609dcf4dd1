"""Parameter files: one schema family shared by every command and notebook.

A parameter file is YAML. The top level holds what every command needs (the data, the
model, the sampler); each notebook or command has its own section::

    source: history.csv           # demo | coldleads | olist | CSV/Parquet | store.duckdb | file.duckdb::table | duckdb:///file.duckdb::table
    spec: funnel.yaml             # needed for files (a store records its spec at ingest)
    factors: [region]             # segment factors (none unless listed)
    model: auto                   # auto | markov | conjugate | lag
    model_settings: {parameterization: auto, change_points: []}
    sampler: {draws: 500, tune: 400, chains: 4}
    seed: 0
    monthly_report: {target_wins: 240, window_months: 6, benchmarks: {QUAL: 0.6}}
    lead_planning: {target_wins: 100, period: quarter}
    process_change: {change_stage: DEMO, change_month: "2025-01"}
    backtest: {horizon: 3, n_windows: 6}
    dashboard: {draws: 1000}

So the same file works with ``funnel fit``, ``report``, ``backtest`` and ``dashboard``.
Nothing here refers to the bundled demo: with no ``factors`` there are none, with no
``change_points`` there are none, with no ``benchmarks`` there are none, and targets left
out are derived from the data (:func:`funnel_models.simulate.default_target`).

Two keys are reserved: ``extends: base.yaml`` layers this file on another (resolved
relative to this file; sections are merged key by key, other keys replaced), and
``notebook: NAME`` says which notebook ``funnel report`` runs (default ``monthly_report``).

A notebook sees the top-level keys plus its own section, flattened into its
``parameters`` cell (:func:`notebook_parameters`).

Examples
--------
>>> p = ParameterFile.model_validate({"source": "demo", "monthly_report": {"target_wins": 80}})
>>> p.monthly_report.target_wins, p.monthly_report.window_months, p.factors
(80.0, 6, [])
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ParameterError
from .models.config import ChangePointConfig, ModelConfig, SamplerConfig
from .yamlio import read_yaml

__all__ = [
    "RunParams", "MonthlyReportSection", "LeadPlanningSection", "ProcessChangeSection",
    "BacktestSection", "DashboardSection", "ParameterFile", "SECTIONS", "NOTEBOOK_SECTIONS",
    "RESERVED_KEYS", "MAX_HORIZON", "load_layers", "load_parameter_file", "parse_parameters",
    "notebook_parameters", "notebook_schema", "closest", "format_validation_error",
]

#: Keys of a parameter file that are not parameters.
RESERVED_KEYS = ("extends", "notebook")
#: Longest forecast horizon, window or backtest horizon in months (bounded work).
MAX_HORIZON = 60
#: Largest number of posterior draws or backtest windows a file may ask for.
MAX_DRAWS = 20_000

#: Keys of the first release's flat files and where they live now.
MOVED_KEYS = {
    "quick": "model: conjugate",
    "draws": "sampler: {draws: ...}", "tune": "sampler: {tune: ...}", "chains": "sampler: {chains: ...}",
    "change_points": "model_settings: {change_points: [...]}",
    "target_wins": "monthly_report: {target_wins: ...} (or lead_planning:)",
    "window_months": "monthly_report: {window_months: ...}",
    "confidence": "monthly_report: {confidence: ...}", "horizon": "monthly_report: {horizon: ...}",
    "benchmarks": "monthly_report: {benchmarks: ...}", "warning_level": "monthly_report: {warning_level: ...}",
    "title": "the notebook's section, e.g. monthly_report: {title: ...}",
    "filters": "segment_filters",
    "model_config": "model_settings: {...}", "sampler_config": "sampler: {...}",
    "period": "lead_planning: {period: ...}", "periods": "lead_planning: {periods: ...}",
    "plan_by": "lead_planning: {plan_by: ...}", "segment_targets": "lead_planning: {segment_targets: ...}",
    "change_stage": "process_change: {change_stage: ...}", "change_month": "process_change: {change_month: ...}",
    "change_name": "process_change: {change_name: ...}",
    "n_windows": "backtest: {n_windows: ...}", "step": "backtest: {step: ...}",
    "baselines": "backtest: {baselines: ...}", "stages": "backtest: {stages: ...}", "output": "backtest: {output: ...}",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunParams(_Strict):
    """What every command and notebook needs: the data, the model, the sampler."""

    #: ``demo``, ``olist``, a CSV/Parquet file, a store written by ``funnel ingest``, ``file.duckdb::table``
    #: (read into pandas) or ``duckdb:///file.duckdb::table`` (left in the warehouse: only counts are fetched).
    source: str
    #: Funnel spec YAML; needed for files (the demo, Olist and stores bring their own).
    spec: str | None = None
    #: Column mapping canonical name -> your column name.
    mapping: dict[str, str] = {}
    #: Attribute filters applied before anything else, e.g. ``{region: North}``.
    segment_filters: dict[str, str | list[str]] = {}
    start: str | None = None
    end: str | None = None
    #: Last observed day (default: the latest date in the data).
    cutoff: str | None = None
    #: Segment factors of the model (partially pooled by the Markov model).
    factors: list[str] = []
    #: ``auto`` (Markov model for lead-level data, lag model for aggregate counts), ``markov``,
    #: ``conjugate`` (exact quick mode) or ``lag``.
    model: Literal["auto", "markov", "conjugate", "lag"] = "auto"
    #: Model settings (parameterization, change points, priors, ...); see ``models.config.ModelConfig``.
    model_settings: ModelConfig = ModelConfig()
    sampler: SamplerConfig = SamplerConfig()
    #: Seed of the sampler and every simulation.
    seed: int = 0
    #: New leads per month for forecasts and plans; null = the mean of the last 3 months.
    new_leads: float | None = Field(None, ge=0, allow_inf_nan=False)
    #: Central interval level of rates and forecast bands.
    interval_level: float = Field(0.8, gt=0, lt=1)

    @field_validator("model_settings")
    @classmethod
    def _no_factors_in_model_config(cls, v: ModelConfig) -> ModelConfig:
        if v.factors:
            raise ValueError("set the segment factors at the top level (factors: [...]), not in model_settings")
        return v

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: SamplerConfig) -> SamplerConfig:
        if v.draws * v.chains > MAX_DRAWS:
            raise ValueError(f"draws x chains = {v.draws * v.chains:,} exceeds the limit of {MAX_DRAWS:,} "
                             "posterior draws; lower draws or chains")
        return v

    @property
    def settings(self) -> ModelConfig:
        """The model settings with the top-level factors filled in."""
        return self.model_settings.model_copy(update={"factors": list(self.factors)})

    def sampler_settings(self, *, progress: bool = False) -> SamplerConfig:
        """The sampler settings with the top-level seed filled in."""
        return self.sampler.model_copy(update={"seed": self.seed, "progress": progress})


class MonthlyReportSection(_Strict):
    """``monthly_report:`` the monthly funnel report."""

    title: str = "Monthly funnel report"
    #: Wins wanted inside the first ``window_months`` forecast months (null: derived from the data).
    target_wins: float | None = Field(None, ge=0, allow_inf_nan=False)
    window_months: int = Field(6, ge=1, le=MAX_HORIZON)
    #: Required P(hit) of the lead plan.
    confidence: float = Field(0.8, gt=0, lt=1)
    horizon: int = Field(6, ge=1, le=MAX_HORIZON)
    #: Benchmark conversion per stage code (none unless given).
    benchmarks: dict[str, float] = {}
    #: Central level of the early-warning predictive interval.
    warning_level: float = Field(0.9, gt=0, lt=1)
    #: Months to the cut-off drawn in the stage flows and the entry cohorts.
    flow_months: int = Field(12, ge=1, le=MAX_HORIZON)
    #: Repeat the flow, cohort and time-to-convert pictures for each segment level.
    charts_by_segment: bool = False

    @field_validator("benchmarks")
    @classmethod
    def _bench(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not 0.0 <= x <= 1.0:
                raise ValueError(f"benchmark for {k!r} must be a conversion between 0 and 1, got {x}")
        return v


class LeadPlanningSection(_Strict):
    """``lead_planning:`` leads needed per period and per segment."""

    title: str = "Lead planning"
    #: Wins wanted per period (null: derived from the data).
    target_wins: float | None = Field(None, ge=0, allow_inf_nan=False)
    period: Literal["month", "quarter"] = "quarter"
    periods: int = Field(2, ge=1, le=8)
    confidence: float = Field(0.8, gt=0, lt=1)
    #: Segment factor to plan per level (null: no per-segment plan).
    plan_by: str | None = None
    #: Per-level targets of the last planned period; empty: split by recent win share.
    segment_targets: dict[str, float] = {}


class ProcessChangeSection(_Strict):
    """``process_change:`` before/after review of a known process change."""

    title: str = "Process change review"
    #: The open stage whose rates changed (required by this notebook).
    change_stage: str | None = None
    change_month: str | None = None
    change_name: str = ""
    horizon: int = Field(6, ge=1, le=MAX_HORIZON)

    @model_validator(mode="after")
    def _month(self) -> "ProcessChangeSection":
        if self.change_stage is not None:
            ChangePointConfig(stage=self.change_stage, month=self.change_month or "", name=self.change_name)
        return self


class BacktestSection(_Strict):
    """``backtest:`` rolling-origin backtest settings."""

    title: str = "Backtest"
    horizon: int = Field(3, ge=1, le=MAX_HORIZON)
    n_windows: int = Field(6, ge=1, le=120)
    step: int = Field(1, ge=1, le=24)
    baselines: list[Literal["trailing3", "last_month", "weighted_pipeline"]] = [
        "trailing3", "last_month", "weighted_pipeline"]
    #: Also backtest monthly entries into these open stages (true: all).
    stages: bool | list[str] = False
    min_train_months: int = Field(6, ge=2, le=120)
    #: Write the long forecast/actual table here (CSV).
    output: str | None = None


class DashboardSection(_Strict):
    """``dashboard:`` the what-if dashboard (target, window and confidence default to the monthly report's)."""

    title: str = "What-if dashboard"
    target_unit: Literal["wins", "revenue"] = "wins"
    #: Starting target in ``target_unit`` (null: ``monthly_report.target_wins``, else derived from the data).
    target: float | None = Field(None, ge=0, allow_inf_nan=False)
    #: Starting window in months (null: ``monthly_report.window_months``).
    window_months: int | None = Field(None, ge=1, le=MAX_HORIZON)
    #: Starting required P(hit) (null: ``monthly_report.confidence``).
    confidence: float | None = Field(None, gt=0, lt=1)
    #: Posterior draws behind leads needed and P(hit).
    draws: int = Field(1000, ge=50, le=MAX_DRAWS)
    #: Simulated futures behind the fan chart.
    forecast_draws: int = Field(300, ge=50, le=MAX_DRAWS)
    #: Draws behind the bottleneck ranking.
    leverage_draws: int = Field(200, ge=20, le=MAX_DRAWS)


#: Section name -> section model.
SECTIONS: dict[str, type[_Strict]] = {
    "monthly_report": MonthlyReportSection,
    "lead_planning": LeadPlanningSection,
    "process_change": ProcessChangeSection,
    "backtest": BacktestSection,
    "dashboard": DashboardSection,
}
#: Notebook name -> the section it reads (every notebook also reads the top level).
NOTEBOOK_SECTIONS: dict[str, str] = {
    "monthly_report": "monthly_report", "lead_planning": "lead_planning",
    "process_change": "process_change", "backtest": "backtest", "what_if": "dashboard",
}


class ParameterFile(RunParams):
    """A whole parameter file: the top level plus one optional section per notebook or command."""

    monthly_report: MonthlyReportSection = MonthlyReportSection()
    lead_planning: LeadPlanningSection = LeadPlanningSection()
    process_change: ProcessChangeSection = ProcessChangeSection()
    backtest: BacktestSection = BacktestSection()
    dashboard: DashboardSection = DashboardSection()


# ---------------------------------------------------------------------------- errors
def closest(key: str, valid: list[str] | tuple[str, ...]) -> str | None:
    """Closest valid key by :func:`difflib.get_close_matches` (None if nothing is close)."""
    m = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return m[0] if m else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _unknown_key(key: str, where: str, valid: list[str], scope: str) -> ParameterError:
    if scope == "the top level" and key in MOVED_KEYS:
        return ParameterError(f"{where}: {key!r} is no longer a top-level key; use {MOVED_KEYS[key]} "
                              "(see README, 'Parameter files')")
    near = closest(key, valid)
    hint = f"did you mean {near!r}?" if near else f"valid keys: {', '.join(sorted(valid))}"
    return ParameterError(f"{where}: unknown parameter {key!r} in {scope}; {hint}")


def format_validation_error(exc: ValidationError, where: str) -> ParameterError:
    """One :class:`ParameterError` listing every problem of a pydantic validation error."""
    msgs = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "missing":
            msgs.append(f"{loc}: required (e.g. 'source: history.csv', or 'source: demo' for the demo data)"
                        if loc == "source" else f"{loc}: required")
        elif e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            msgs.append(f"{loc}: unknown key" + (f" in {'.'.join(map(str, parent))}" if parent else ""))
        else:
            msgs.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
    return ParameterError(f"{where}: invalid parameter value(s):\n  - " + "\n  - ".join(msgs))


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    """Unknown keys, at the top level and in every section, named with the closest valid key."""
    top = _field_names(ParameterFile) + list(RESERVED_KEYS)
    for k, v in data.items():
        if k not in top:
            raise _unknown_key(k, where, top, "the top level")
        section = SECTIONS.get(k)
        nested = {"model_settings": ModelConfig, "sampler": SamplerConfig}.get(k)
        model = section or nested
        if model is not None and isinstance(v, Mapping):
            valid = _field_names(model)
            for sk in v:
                if sk not in valid:
                    raise _unknown_key(str(sk), where, valid, f"'{k}'")


# ---------------------------------------------------------------------------- loading
def load_layers(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The chain of YAML layers of a parameter file, base first: ``[(file, mapping), ...]``."""
    p = Path(path)
    data = read_yaml(p, ParameterError, what="parameter file")
    rp = p.resolve()
    if rp in _seen:
        chain = " -> ".join(str(s) for s in (*_seen, rp))
        raise ParameterError(f"{p}: 'extends' forms a cycle: {chain}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(f"{p}: a parameter file must be a mapping of key: value, got "
                             f"{type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ParameterError(f"{p}: keys must be strings, got {bad}")
    _check_keys(data, str(p))
    layers: list[tuple[Path, dict[str, Any]]] = []
    base = data.get("extends")
    if base is not None:
        if not isinstance(base, str):
            raise ParameterError(f"{p}: 'extends' must be a file name like base.yaml, got {base!r}")
        bp = Path(base)
        if not bp.is_absolute():
            bp = p.parent / bp
        if not bp.is_file():
            raise ParameterError(f"{p}: extends {base!r}, but {bp} does not exist")
        layers = load_layers(bp, _seen=(*_seen, rp))
    layers.append((p, data))
    return layers


def _merge(layers: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Layer mappings: sections and nested settings merge key by key, other keys are replaced."""
    merged: dict[str, Any] = {}
    for _, data in layers:
        for k, v in data.items():
            if k == "extends":
                continue
            if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping) and \
                    (k in SECTIONS or k in ("model_settings", "sampler")):
                merged[k] = {**merged[k], **v}
            else:
                merged[k] = v
    return merged


def parse_parameters(values: Mapping[str, Any], where: str = "parameters") -> ParameterFile:
    """Validate a parameter mapping (as in a file); :class:`ParameterError` on any problem."""
    data = {k: v for k, v in values.items() if k not in RESERVED_KEYS}
    _check_keys(data, where)
    try:
        return ParameterFile.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, where) from None


def load_parameter_file(path: str | Path, overrides: Mapping[str, Any] | None = None
                        ) -> tuple[ParameterFile, str | None]:
    """Load, layer and validate a parameter file.

    Parameters
    ----------
    path : path
        The YAML file.
    overrides : mapping, optional
        Values layered on top of the file (same form as the file).

    Returns
    -------
    (ParameterFile, notebook)
        The validated parameters and the file's ``notebook`` key (None when absent).

    Raises
    ------
    ParameterError
        Unknown key (naming the key, the file and the closest valid key), bad value, bad
        YAML, missing file, ``extends`` cycle.
    """
    layers = load_layers(path)
    if overrides:
        layers.append((Path("<overrides>"), dict(overrides)))
    merged = _merge(layers)
    notebook = merged.get("notebook")
    if notebook is not None and not isinstance(notebook, str):
        raise ParameterError(f"{path}: 'notebook' must be a notebook name such as monthly_report, got {notebook!r}")
    return parse_parameters(merged, where=str(layers[-1 if not overrides else -2][0])), notebook


# ---------------------------------------------------------------------------- notebooks
def notebook_schema(notebook: str) -> type[BaseModel]:
    """The section model a notebook reads (besides the top level)."""
    name = Path(str(notebook)).stem
    try:
        return SECTIONS[NOTEBOOK_SECTIONS[name]]
    except KeyError:
        raise ParameterError(f"no parameter section for notebook {name!r}; known notebooks: "
                             f"{sorted(NOTEBOOK_SECTIONS)}") from None


def notebook_parameters(params: ParameterFile, notebook: str) -> dict[str, Any]:
    """The flat papermill parameters of ``notebook``: the top level plus its section.

    Values are plain JSON-able literals (nested settings as dicts), in the order of the
    notebook's ``parameters`` cell.
    """
    name = Path(str(notebook)).stem
    notebook_schema(name)
    top = params.model_dump(include=set(RunParams.model_fields))
    section = getattr(params, NOTEBOOK_SECTIONS[name]).model_dump()
    clash = set(top) & set(section)
    if clash:  # pragma: no cover - a schema bug, guarded by tests
        raise ParameterError(f"section {NOTEBOOK_SECTIONS[name]} repeats top-level keys {sorted(clash)}")
    return {**top, **section}


def from_notebook(notebook: str, values: Mapping[str, Any], where: str = "notebook") -> ParameterFile:
    """Rebuild the :class:`ParameterFile` from a notebook's flat parameters (inverse of
    :func:`notebook_parameters`)."""
    name = Path(str(notebook)).stem
    section_name = NOTEBOOK_SECTIONS.get(name)
    if section_name is None:
        raise ParameterError(f"no parameter section for notebook {name!r}")
    section_keys = set(SECTIONS[section_name].model_fields)
    top = {k: v for k, v in values.items() if k not in section_keys}
    sec = {k: v for k, v in values.items() if k in section_keys}
    return parse_parameters({**top, section_name: sec}, where=where)
