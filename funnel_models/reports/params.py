"""Report parameters: a pydantic schema per notebook, YAML loading with layering, checks.

A parameter file is YAML with the notebook's parameter names as keys. Two keys are
reserved:

- ``extends: base.yaml`` layers this file on top of another one (resolved relative to
  this file; chains are allowed, cycles are an error). Layering replaces whole top-level
  keys: a layer that sets ``benchmarks`` replaces the base's ``benchmarks`` mapping.
- ``notebook: NAME`` says which notebook the file is for (default ``monthly_report``);
  ``funnel report --notebook`` overrides it.

Every key is checked in the file where it appears: a key the notebook's schema does not
know raises :class:`~funnel_models.errors.ParameterError` naming the key, the file and the
closest valid key. The merged values are then validated by pydantic (types, ranges), and
:func:`check_declared` compares the keys with the parameters the notebook itself declares
in its ``parameters`` cell (``papermill.inspect_notebook``), before anything runs.

Examples
--------
>>> p = MonthlyReportParams(target_wins=80)
>>> p.window_months, p.quick
(6, False)
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ParameterError

__all__ = [
    "CommonParams", "MonthlyReportParams", "LeadPlanningParams", "ProcessChangeParams",
    "SCHEMAS", "RESERVED_KEYS", "load_layers", "load_parameters", "validate_parameters",
    "check_declared", "declared_parameters", "schema_for", "closest",
]

#: Keys of a parameter file that are not notebook parameters.
RESERVED_KEYS = ("extends", "notebook")


class CommonParams(BaseModel):
    """Parameters shared by every report notebook: data, filters, model, output."""

    model_config = ConfigDict(extra="forbid")

    #: "demo", "olist", a CSV/Parquet path or a DuckDB store written by ``funnel ingest``.
    source: str = "demo"
    #: Funnel spec YAML (needed for files; the demo and Olist bring their own).
    spec: str | None = None
    #: Column mapping canonical name -> your column name (files only).
    mapping: dict[str, str] = {}
    #: Attribute filters applied before anything else, e.g. {"region": "North"}.
    segment_filters: dict[str, str | list[str]] = {}
    start: str | None = None
    end: str | None = None
    #: Last observed day (default: the latest date in the data).
    cutoff: str | None = None
    #: Quick mode: exact conjugate model (no MCMC, no partial pooling).
    quick: bool = False
    #: Segment factors of the model (partially pooled in the MCMC model).
    factors: list[str] = ["region", "channel"]
    #: Known process changes, e.g. [{"stage": "DEMO", "month": "2025-01", "name": "..."}].
    change_points: list[dict[str, str]] = [{"stage": "DEMO", "month": "2025-01", "name": "sales training"}]
    draws: int = Field(500, ge=10)
    tune: int = Field(400, ge=10)
    chains: int = Field(4, ge=1)
    seed: int = 0
    #: New leads per month for forecasts and plans; null = mean of the last 3 months.
    new_leads: float | None = Field(None, ge=0)
    #: Central interval level of the rates and the forecast bands.
    interval_level: float = Field(0.8, gt=0, lt=1)
    #: Where the notebook writes summary.json ("" = do not write; the runner sets it).
    summary_path: str = ""

    @field_validator("change_points")
    @classmethod
    def _cp(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, cp in enumerate(v):
            bad = set(cp) - {"stage", "month", "name"}
            if bad or not {"stage", "month"} <= set(cp):
                raise ValueError(f"change_points[{i}] needs keys stage and month (and optionally name), "
                                 f"got {sorted(cp)}")
        return v


class MonthlyReportParams(CommonParams):
    """Parameters of ``notebooks/monthly_report``."""

    title: str = "Monthly funnel report"
    #: Wins wanted inside the first ``window_months`` forecast months.
    target_wins: float = Field(240, ge=0)
    window_months: int = Field(6, ge=1)
    #: Required P(hit) of the lead plan.
    confidence: float = Field(0.8, gt=0, lt=1)
    horizon: int = Field(6, ge=1)
    #: Benchmark stage conversion per stage code.
    benchmarks: dict[str, float] = {"LEAD": 0.7, "MQL": 0.7, "SQL": 0.65, "DEMO": 0.65, "PROP": 0.65,
                                    "NEGO": 0.65}
    #: Central level of the early-warning predictive interval.
    warning_level: float = Field(0.9, gt=0, lt=1)

    @field_validator("benchmarks")
    @classmethod
    def _bench(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not 0.0 <= x <= 1.0:
                raise ValueError(f"benchmark for {k!r} must be a conversion between 0 and 1, got {x}")
        return v


class LeadPlanningParams(CommonParams):
    """Parameters of ``notebooks/lead_planning``."""

    title: str = "Lead planning"
    #: Wins wanted per period (month or quarter).
    target_wins: float = Field(100, ge=0)
    period: Literal["month", "quarter"] = "quarter"
    #: Number of consecutive periods to plan.
    periods: int = Field(2, ge=1, le=8)
    confidence: float = Field(0.8, gt=0, lt=1)
    #: Segment factor to plan per level ("" = no per-segment plan).
    plan_by: str = "channel"
    #: Per-level targets of the last planned period; empty = split target_wins by recent win share.
    segment_targets: dict[str, float] = {}


class ProcessChangeParams(CommonParams):
    """Parameters of ``notebooks/process_change``."""

    title: str = "Process change review"
    change_stage: str = "DEMO"
    change_month: str = "2025-01"
    change_name: str = "sales training"
    horizon: int = Field(6, ge=1)
    change_points: list[dict[str, str]] = []


#: Schema per notebook name.
SCHEMAS: dict[str, type[CommonParams]] = {
    "monthly_report": MonthlyReportParams,
    "lead_planning": LeadPlanningParams,
    "process_change": ProcessChangeParams,
}


def schema_for(notebook: str) -> type[CommonParams]:
    """The parameter schema of a notebook (by name or path)."""
    name = Path(str(notebook)).stem
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ParameterError(f"no parameter schema for notebook {name!r}; known notebooks: "
                             f"{sorted(SCHEMAS)}") from None


def closest(key: str, valid: list[str] | tuple[str, ...]) -> str | None:
    """Closest valid key by :func:`difflib.get_close_matches` (None if nothing is close)."""
    m = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return m[0] if m else None


def _unknown(key: str, where: str, valid: list[str], what: str) -> ParameterError:
    near = closest(key, valid)
    hint = f"did you mean {near!r}?" if near else f"valid keys: {', '.join(sorted(valid))}"
    return ParameterError(f"{where}: unknown parameter {key!r} for {what}; {hint}")


def load_layers(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """The chain of YAML layers of a parameter file, base first: ``[(file, mapping), ...]``."""
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{p}: parameter file not found")
    rp = p.resolve()
    if rp in _seen:
        chain = " -> ".join(str(s) for s in (*_seen, rp))
        raise ParameterError(f"{p}: 'extends' forms a cycle: {chain}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParameterError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(f"{p}: a parameter file must be a mapping of key: value, got "
                             f"{type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ParameterError(f"{p}: keys must be strings, got {bad}")
    layers: list[tuple[Path, dict[str, Any]]] = []
    base = data.get("extends")
    if base is not None:
        if not isinstance(base, str):
            raise ParameterError(f"{p}: 'extends' must be a file name like base.yaml, got {base!r}")
        bp = Path(base)
        if not bp.is_absolute():
            bp = p.parent / bp
        layers = load_layers(bp, _seen=(*_seen, rp))
    layers.append((p, data))
    return layers


def validate_parameters(values: Mapping[str, Any], notebook: str = "monthly_report",
                        where: str = "parameters") -> CommonParams:
    """Validate a flat mapping of parameters for ``notebook``; ParameterError on any problem."""
    schema = schema_for(notebook)
    valid = list(schema.model_fields)
    for k in values:
        if k not in schema.model_fields:
            raise _unknown(k, where, valid, f"notebook {Path(notebook).stem}")
    try:
        return schema.model_validate(dict(values))
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msgs.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
        raise ParameterError(f"{where}: invalid parameter value(s):\n  - " + "\n  - ".join(msgs)) from None


def load_parameters(path: str | Path | None, notebook: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> tuple[str, CommonParams, dict[str, Any]]:
    """Load, layer and validate a parameter file.

    Parameters
    ----------
    path : path or None
        The YAML file (None: no file, the schema defaults).
    notebook : str, optional
        Notebook name; default the file's ``notebook`` key or ``monthly_report``.
    overrides : mapping, optional
        Values applied on top of the file (e.g. from tests).

    Returns
    -------
    (notebook, params, explicit)
        The notebook name, the validated parameters and the keys set explicitly (merged
        over the layers and overrides).

    Raises
    ------
    ParameterError
        Unknown key (naming the key, the file and the closest valid key), bad value, bad
        YAML, missing file, ``extends`` cycle.
    """
    layers = load_layers(path) if path is not None else []
    nb_key = None
    for _, data in layers:
        if "notebook" in data:
            nb_key = data["notebook"]
    name = Path(str(notebook or nb_key or "monthly_report")).stem
    schema = schema_for(name)
    valid = list(schema.model_fields)
    merged: dict[str, Any] = {}
    for file, data in layers:
        for k, v in data.items():
            if k in RESERVED_KEYS:
                continue
            if k not in schema.model_fields:
                raise _unknown(k, str(file), valid + list(RESERVED_KEYS), f"notebook {name}")
            merged[k] = v
    for k, v in (overrides or {}).items():
        if k not in schema.model_fields:
            raise _unknown(k, "overrides", valid, f"notebook {name}")
        merged[k] = v
    where = str(layers[-1][0]) if layers else "parameters"
    params = validate_parameters(merged, name, where=where)
    return name, params, merged


def declared_parameters(notebook_path: str | Path) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell (``papermill.inspect_notebook``)."""
    import papermill as pm
    nb = Path(notebook_path)
    if not nb.is_file():
        raise ParameterError(f"{nb}: notebook not found")
    return dict(pm.inspect_notebook(str(nb)))


def check_declared(keys: Mapping[str, Any] | list[str], notebook_path: str | Path, where: str = "parameters") -> None:
    """Every key must be a parameter the notebook declares; ParameterError otherwise."""
    declared = declared_parameters(notebook_path)
    if not declared:
        raise ParameterError(f"{notebook_path}: the notebook has no cell tagged 'parameters'")
    for k in keys:
        if k not in declared:
            raise _unknown(k, where, list(declared), f"the parameters cell of {Path(notebook_path).name}")
