"""Parameterised report notebooks: parameters, analysis, plots and the papermill runner.

- :mod:`~funnel_models.reports.params`: pydantic schema per notebook, YAML layering
  (``extends:``), unknown-key errors, checks against the notebook's parameters cell;
- :mod:`~funnel_models.reports.analysis`: what the notebooks compute (thin notebooks);
- :mod:`~funnel_models.reports.plots`: the matplotlib figures;
- :mod:`~funnel_models.reports.runner`: :func:`run_report` and :func:`batch`
  (papermill + nbconvert, atomic output folders, failure contract).
"""
from __future__ import annotations

from .params import load_parameters, validate_parameters

__all__ = ["run_report", "batch", "ReportResult", "load_parameters", "validate_parameters"]


def __getattr__(name: str):  # lazy: importing the runner pulls in papermill / nbconvert
    if name in ("run_report", "batch", "ReportResult"):
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
