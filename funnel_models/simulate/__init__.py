"""Simulation on top of a :class:`~funnel_models.posterior.PosteriorFunnel`.

Forecasts, plans (leads needed for a target), what-if scenarios, leverage analysis,
process-change impact and early warning all share one monthly Markov-chain engine
(:mod:`funnel_models.simulate.core`, whose docstring states the model's semantics).
Per-segment questions are answered by passing that segment's posterior.
"""
from __future__ import annotations

from .core import expected_chain, intervals, simulate_chain, synthetic_posterior
from .forecast import ForecastResult, check_window, expected_wins, forecast, leads_from_history
from .impact import ImpactResult, process_change_impact
from .leverage import benchmark_gaps, leverage, pipeline_coverage, stall_ranking
from .planning import LeadsNeededResult, leads_needed, naive_win_rate
from .warning import WarningResult, early_warning
from .whatif import WhatIfResult, what_if

__all__ = [
    "forecast", "ForecastResult", "leads_from_history", "expected_wins", "check_window",
    "leads_needed", "LeadsNeededResult", "naive_win_rate",
    "what_if", "WhatIfResult",
    "leverage", "stall_ranking", "pipeline_coverage", "benchmark_gaps",
    "process_change_impact", "ImpactResult",
    "early_warning", "WarningResult",
    "intervals", "simulate_chain", "expected_chain", "synthetic_posterior",
]
