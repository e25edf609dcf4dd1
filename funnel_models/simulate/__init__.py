"""Simulation on top of a :class:`~funnel_models.posterior.PosteriorFunnel`.

Forecasts, plans (leads needed for a target), what-if scenarios, leverage analysis, the
open pipeline's outlook, process-change impact and early warning all share one engine
over the monthly (stage, months in stage) chain (:mod:`funnel_models.simulate.core`,
whose docstring states the semantics). Per-segment questions are answered by passing that
segment's posterior.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> import pandas as pd
>>> from funnel_models import simulate
>>> truth = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> old = simulate.core.aged_posterior(truth, 4, decay=0.5)     # hazards fall with months in stage
>>> young = float(simulate.expected_wins(old, {"NEGO": 10}, 0, 3).sum())
>>> stale = float(simulate.expected_wins(old, pd.DataFrame({"stage": ["NEGO"] * 10, "age_months": 3}), 0, 3).sum())
>>> young > stale
True
"""
from __future__ import annotations

from ..intervals import interval_table as intervals
from .core import expected_run, pipeline_state, sampled_run, synthetic_posterior
from .forecast import ForecastResult, check_window, default_target, expected_wins, forecast, leads_from_history
from .impact import ImpactResult, process_change_impact
from .leverage import benchmark_gaps, leverage, pipeline_coverage, pipeline_outlook, stall_ranking
from .planning import LeadsNeededResult, PlanSims, leads_needed, naive_win_rate, plan_sims
from .warning import WarningResult, early_warning, inflow_effect
from .whatif import WhatIfResult, what_if

__all__ = [
    "forecast", "ForecastResult", "leads_from_history", "expected_wins", "check_window", "default_target",
    "leads_needed", "LeadsNeededResult", "naive_win_rate", "plan_sims", "PlanSims",
    "what_if", "WhatIfResult",
    "leverage", "stall_ranking", "pipeline_coverage", "pipeline_outlook", "benchmark_gaps",
    "process_change_impact", "ImpactResult",
    "early_warning", "WarningResult", "inflow_effect",
    "pipeline_state", "sampled_run", "expected_run", "synthetic_posterior",
    "intervals",
]
