"""Parameterised report notebooks: sections, plots, publishing and the papermill runner.

- :mod:`~funnel_models.reports.analysis`: the one namespace the notebooks call (the
  sections live in :mod:`~.context`, :mod:`~.about`, :mod:`~.monthly`, :mod:`~.outlook`,
  :mod:`~.planning`, :mod:`~.change`, :mod:`~.backtest_report`);
- :mod:`~funnel_models.reports.plots`: the matplotlib figures;
- :mod:`~funnel_models.reports.notebooks`: finding notebooks and parameter files, the
  parameters a notebook declares;
- :mod:`~funnel_models.reports.runner`: :func:`run_report` and :func:`batch` (papermill +
  nbconvert, failure contract);
- :mod:`~funnel_models.reports.publish`: crash-safe publishing of report folders.

Parameter files themselves are :mod:`funnel_models.params`, checked before anything runs
by :mod:`funnel_models.preflight`.
"""
from __future__ import annotations

__all__ = ["run_report", "batch", "ReportResult"]


def __getattr__(name: str):  # lazy: importing the runner pulls in papermill / nbconvert
    if name in __all__:
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
