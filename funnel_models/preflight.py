"""The check every command runs on a parameter file before anything slow runs.

``funnel fit``, ``funnel report`` (and its batch mode), ``funnel backtest``, ``funnel
dashboard`` and the report runner all call :func:`preflight` right after the file is
validated (:func:`funnel_models.params.load_parameter_file`) and before the data is fitted
or a notebook starts. It reads only what is cheap: the funnel spec and the column names
of the source (a file's header, a store's recorded spec), never the rows. So a file that
cannot work fails in a second with exit status 2 instead of after a long fit:

- the source exists (``olist`` needs the Olist files; a path must exist; a store must
  have a recorded spec) and the spec is present where the source needs one;
- stage codes exist in the spec: ``monthly_report.benchmarks``, ``model_settings.change_points``,
  ``process_change.change_stage``, ``backtest.stages``;
- columns exist in the data: ``factors``, the keys of ``segment_filters``,
  ``lead_planning.plan_by`` (which the lead planning notebook needs as a factor);
- dates parse (``start``, ``end``, ``cutoff``, ``process_change.change_month``);
- the model fits the data (``auto`` always does; the Markov and conjugate models need
  lead-level data; the lag model needs aggregate counts and takes no segments or change
  points);
- what the notebook or command needs: ``process_change`` needs ``change_stage`` and
  ``change_month``; ``backtest`` needs stage history.

Every problem is a :class:`~funnel_models.errors.ParameterError` naming the parameter file,
the key, the valid values and the fix (a store in use raises
:class:`~funnel_models.errors.StoreBusyError`, exit status 3).

Examples
--------
>>> from funnel_models.params import ParameterFile
>>> info = preflight(ParameterFile(source="demo", factors=["region"]))
>>> info.kind, info.spec.codes[0], info.attributes
('history', 'LEAD', ('region', 'channel'))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .data.spec import FunnelSpec
from .errors import FunnelDataError, ParameterError, SpecError
from .params import ParameterFile, closest

__all__ = ["SourceInfo", "preflight", "source_info"]


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`preflight` learnt about a source without reading its rows.

    Attributes
    ----------
    label : str
        The source as the parameter file names it.
    spec : FunnelSpec
    kind : {"history", "snapshots", "counts"}
        The canonical shape the source holds.
    attributes : tuple of str
        Attribute columns available for factors and filters.
    """

    label: str
    spec: FunnelSpec
    kind: str
    attributes: tuple[str, ...]


def _olist(params: ParameterFile, where: str) -> SourceInfo:
    from .datasets.olist import OLIST_DEALS_FILE, OLIST_LEADS_FILE, OLIST_SPEC, olist_dir
    folder = olist_dir()
    missing = [f for f in (OLIST_LEADS_FILE, OLIST_DEALS_FILE) if not (folder / f).is_file()]
    if missing:
        raise ParameterError(f"{where}: source 'olist' needs the Olist marketing-funnel files {missing}, which are "
                             f"not in {folder}. Fix: download 'Marketing Funnel by Olist' (Kaggle) and set "
                             "FUNNEL_OLIST_DIR to its folder, or use another source")
    spec = _load_spec(params.spec, where) if params.spec else FunnelSpec.from_dict(OLIST_SPEC)
    return SourceInfo("olist", spec, "history", tuple(spec.attributes))


def _load_spec(spec: str, where: str) -> FunnelSpec:
    p = Path(spec)
    if not p.is_file():
        raise ParameterError(f"{where}: spec {spec!r} does not exist (relative paths are read from the current "
                             "folder). Fix: correct the path, or run 'funnel init DATA' to write a spec")
    try:
        return FunnelSpec.load(p)
    except SpecError as exc:
        raise ParameterError(f"{where}: the spec {spec!r} is invalid: {exc}") from None


def _file(params: ParameterFile, where: str, wait: float) -> SourceInfo:
    src = params.source
    path = src.split("::")[0]
    if not Path(path).exists():
        raise ParameterError(f"{where}: source {src!r} does not exist (relative paths are read from the current "
                             "folder). Fix: correct the path, or use 'demo', 'coldleads' or 'olist'")
    if path.endswith(".duckdb") and "::" not in src:
        from .data.store import Store
        store = Store(path, wait=wait)
        shapes = store.shapes()
        if not shapes:
            raise ParameterError(f"{where}: the store {src!r} holds no data yet. Fix: run 'funnel ingest FILE "
                                 f"--spec SPEC.yaml --store {src}'")
        spec = _load_spec(params.spec, where) if params.spec else store.spec()
        return SourceInfo(src, spec, shapes[0], tuple(spec.attributes))
    if not params.spec:
        raise ParameterError(f"{where}: source {src!r} needs a funnel spec. Fix: add 'spec: funnel.yaml' "
                             f"(run 'funnel init {src}' to write one)")
    spec = _load_spec(params.spec, where)
    from .data.columns import detect_shape
    from .data.readers import source_columns
    try:
        label, columns = source_columns(src)
        shape = detect_shape(columns, spec, params.mapping or None, source=label)
    except FunnelDataError as exc:
        raise ParameterError(f"{where}: source {src!r}: {exc}") from None
    return SourceInfo(src, spec, "history" if shape == "opportunities" else shape, tuple(spec.attributes))


def _warehouse(params: ParameterFile, where: str) -> SourceInfo:
    """A ``<url>::<table>`` source: the table's columns, read from its schema (no rows)."""
    if not params.spec:
        raise ParameterError(f"{where}: source {params.source!r} needs a funnel spec. Fix: add 'spec: funnel.yaml'")
    spec = _load_spec(params.spec, where)
    from .data.warehouse_source import open_warehouse
    try:
        table, label = open_warehouse(params.source, spec, mapping=params.mapping or None, check=False)
    except FunnelDataError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    attrs = [c for c in table.columns if c not in ("lead_id", "stage", "entered_at", "value", "r", "m")]
    return SourceInfo(label, spec, "history", tuple(attrs))


def source_info(params: ParameterFile, where: str = "parameters", *, wait: float = 0.0) -> SourceInfo:
    """The spec, shape and attribute columns of a parameter file's source (rows unread).

    Raises
    ------
    ParameterError
        Missing source, spec or Olist files; unreadable header; invalid spec.
    StoreBusyError
        The store is in use by another process (after ``wait`` seconds).
    """
    if params.source in ("demo", "coldleads"):
        from .datasets.coldleads import COLD_SPEC
        from .datasets.demo import DEMO_SPEC
        spec = FunnelSpec.from_dict(DEMO_SPEC if params.source == "demo" else COLD_SPEC)
        return SourceInfo(params.source, spec, "history", tuple(spec.attributes))
    if params.source == "olist":
        return _olist(params, where)
    from .data.warehouse_source import is_warehouse_source
    if is_warehouse_source(params.source):
        return _warehouse(params, where)
    return _file(params, where, wait)


def _unknown(where: str, key: str, bad: Iterable[str], valid: Iterable[str], what: str) -> ParameterError:
    bad, valid = list(bad), list(valid)
    near = [closest(b, valid) for b in bad]
    hint = "; ".join(f"did you mean {n!r} for {b!r}?" for b, n in zip(bad, near) if n)
    return ParameterError(f"{where}: {key}: {what} {bad} not in the data; valid: {valid or 'none'}"
                          + (f" ({hint})" if hint else "") + ". Fix: use one of the valid values")


def _check_codes(params: ParameterFile, spec: FunnelSpec, where: str) -> None:
    codes = list(spec.codes)
    checks = [("monthly_report.benchmarks", list(params.monthly_report.benchmarks)),
              ("model_settings.change_points", [c.stage for c in params.model_settings.change_points]),
              ("process_change.change_stage", [params.process_change.change_stage]
               if params.process_change.change_stage else [])]
    if isinstance(params.backtest.stages, list):
        checks.append(("backtest.stages", [s for s in params.backtest.stages if s != "WON"]))
    for key, used in checks:
        bad = [c for c in used if c not in codes]
        if bad:
            raise _unknown(where, key, bad, codes, "stage code(s)")


def _check_columns(params: ParameterFile, attributes: tuple[str, ...], where: str) -> None:
    cols = list(attributes)
    for key, used in (("factors", params.factors), ("segment_filters", list(params.segment_filters))):
        bad = [c for c in used if c not in cols]
        if bad:
            raise _unknown(where, key, bad, cols, "column(s)")
    dup = sorted({f for f in params.factors if params.factors.count(f) > 1})
    if dup:
        raise ParameterError(f"{where}: factors lists {dup} twice. Fix: list each factor once")
    lp = params.lead_planning
    if lp.plan_by is not None and lp.plan_by not in cols:
        raise _unknown(where, "lead_planning.plan_by", [lp.plan_by], cols, "column")
    if lp.plan_by is None and lp.segment_targets:
        raise ParameterError(f"{where}: lead_planning.segment_targets needs lead_planning.plan_by (the factor "
                             "whose levels the targets are for)")


def _check_dates(params: ParameterFile, where: str) -> None:
    parsed = {}
    for key in ("start", "end", "cutoff"):
        v = getattr(params, key)
        if v is None:
            continue
        try:
            parsed[key] = pd.Timestamp(v)
        except (ValueError, TypeError):
            raise ParameterError(f"{where}: {key}: {v!r} is not a date. Fix: write it as YYYY-MM-DD") from None
    if "start" in parsed and "end" in parsed and parsed["start"] > parsed["end"]:
        raise ParameterError(f"{where}: start {params.start} is after end {params.end}. Fix: swap them")


def _check_model(params: ParameterFile, kind: str, where: str) -> None:
    model = params.model
    if kind == "counts":
        if model in ("markov", "conjugate"):
            raise ParameterError(f"{where}: model: {model} needs lead-level data (stage history or monthly "
                                 "snapshots), but the source holds aggregate counts. Fix: use model: auto (or lag)")
        model = "lag"
    elif model == "lag":
        raise ParameterError(f"{where}: model: lag is for aggregate counts only; this source holds lead-level "
                             "data. Fix: use model: auto, markov or conjugate")
    if model == "lag" and (params.factors or params.model_settings.change_points):
        raise ParameterError(f"{where}: aggregate counts are fitted by the lag model, which has no segments or "
                             "change points. Fix: remove factors and model_settings.change_points")


def _check_notebook(params: ParameterFile, notebook: str | None, info: SourceInfo, where: str) -> None:
    name = Path(str(notebook)).stem if notebook else None
    if name == "process_change":
        pc = params.process_change
        if not pc.change_stage or not pc.change_month:
            raise ParameterError(f"{where}: the process_change notebook needs process_change.change_stage and "
                                 f"process_change.change_month. Fix: add e.g. 'process_change: {{change_stage: "
                                 f"{info.spec.codes[0]}, change_month: \"2025-01\"}}'")
        if info.kind == "counts":
            raise ParameterError(f"{where}: the process_change notebook needs lead-level data; the source holds "
                                 "aggregate counts")
    if name == "backtest" and info.kind != "history":
        raise ParameterError(f"{where}: the backtest needs stage history (lead_id, stage, entered_at); the "
                             f"source holds {info.kind}. Fix: use a stage-history source")
    plan_by = params.lead_planning.plan_by
    if name == "lead_planning" and plan_by and plan_by not in params.factors:
        raise ParameterError(f"{where}: lead_planning.plan_by {plan_by!r} must also be a model factor. Fix: add it "
                             f"to factors (now {params.factors}), or set lead_planning: {{plan_by: null}}")


def preflight(params: ParameterFile, notebook: str | None = None, *, where: str = "parameters",
              wait: float = 0.0) -> SourceInfo:
    """Check a validated parameter file against its source before anything runs.

    Parameters
    ----------
    params : ParameterFile
        The validated parameters.
    notebook : str, optional
        The notebook or command about to run (``monthly_report``, ``lead_planning``,
        ``process_change``, ``backtest``, ``what_if``); adds its own requirements.
    where : str
        How messages name the parameter file.
    wait : float
        Seconds to wait for a store that another process holds.

    Returns
    -------
    SourceInfo

    Raises
    ------
    ParameterError
        The first problem found, naming the file, the key and the fix.
    StoreBusyError
        The store is in use (exit status 3).
    """
    info = source_info(params, where, wait=wait)
    _check_codes(params, info.spec, where)
    _check_columns(params, info.attributes, where)
    _check_dates(params, where)
    _check_model(params, info.kind, where)
    _check_notebook(params, notebook, info, where)
    return info

