"""What the report notebooks call: one namespace for every section, so the notebooks stay thin.

A notebook does::

    from funnel_models.reports import analysis as fr
    ctx = fr.open_report("monthly_report", globals())
    fr.show(ctx, fr.funnel_section)
    ...
    fr.write_summary(ctx)

The functions live in the modules by concept: :mod:`~funnel_models.reports.context`
(parameters, data, model), :mod:`~funnel_models.reports.about` (header, model choice,
diagnostics), :mod:`~funnel_models.reports.monthly` (the funnel as it is),
:mod:`~funnel_models.reports.outlook` (what comes next), :mod:`~funnel_models.reports.planning`,
:mod:`~funnel_models.reports.change`, :mod:`~funnel_models.reports.backtest_report`,
:mod:`~funnel_models.reports.render` (sections on the page) and
:mod:`~funnel_models.reports.summary` (summary.json).

Examples
--------
>>> from funnel_models.params import ParameterFile
>>> ctx = prepare("monthly_report", ParameterFile(source="demo", model="conjugate", new_leads=300))
>>> funnel_section(ctx).title
'Funnel this month'
"""
from __future__ import annotations

from .about import diagnostics_banner, diagnostics_section, header_section, model_section, open_report
from .backtest_report import calibration_section, forecasts_section, run_backtest, scores_section, windows_section
from .change import change_history_section, change_section
from .context import Context, prepare
from .monthly import conversion_section, funnel_section, pipeline_section, segment_section, stall_section
from .outlook import bottleneck_section, forecast_section, inflow_section, leads_section, warning_section
from .planning import plan_periods_section, plan_segments_section
from .process import cohort_section, flows_section, time_to_convert_section
from .render import Section, show
from .summary import write_summary

__all__ = [
    "Context", "Section", "prepare", "open_report", "show", "write_summary",
    "header_section", "diagnostics_banner", "model_section", "diagnostics_section",
    "funnel_section", "pipeline_section", "conversion_section", "stall_section", "segment_section",
    "warning_section", "inflow_section", "forecast_section", "leads_section", "bottleneck_section",
    "flows_section", "cohort_section", "time_to_convert_section", "plan_periods_section", "plan_segments_section", "change_section", "change_history_section",
    "run_backtest", "scores_section", "calibration_section", "forecasts_section", "windows_section",
]
