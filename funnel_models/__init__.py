"""funnel_models: Bayesian forecasting and simulation of sales and marketing funnels.

The public entry points, by layer (imported lazily, so ``import funnel_models`` is cheap
and has no side effects)::

    data        FunnelSpec, load_data, LoadedData
    models      fit_model, fit_inflow, from_params, FunnelModel, ConjugateFunnel, LagModel
    posterior   PosteriorFunnel
    simulate    forecast, leads_needed, what_if, leverage, early_warning, pipeline_outlook
    evaluation  backtest
    events      funnel, Step
    parameters  load_parameter_file, ParameterFile

Examples
--------
>>> import funnel_models as fm
>>> data = fm.load_data("demo", demo_months=12)
>>> fm.fit_model(data, model="conjugate").posterior_funnel(draws=50).n_draws
50
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (FunnelDataError, FunnelError, FunnelWarning, ModelConfigError, ParameterError,
                     ReportError, SimulationError, SpecError)

__version__ = "0.2.0"

#: Public name -> module that defines it.
_LAZY = {
    "FunnelSpec": "funnel_models.data.spec", "Stage": "funnel_models.data.spec",
    "WON": "funnel_models.data.spec", "LOST": "funnel_models.data.spec", "ENTRY": "funnel_models.data.spec",
    "load_data": "funnel_models.workflow", "LoadedData": "funnel_models.workflow",
    "fit_model": "funnel_models.workflow", "fit_inflow": "funnel_models.workflow",
    "from_params": "funnel_models.workflow",
    "FunnelModel": "funnel_models.models", "ConjugateFunnel": "funnel_models.models",
    "LagModel": "funnel_models.models", "BaseFunnelModel": "funnel_models.models",
    "PosteriorFunnel": "funnel_models.posterior",
    "forecast": "funnel_models.simulate", "leads_needed": "funnel_models.simulate",
    "what_if": "funnel_models.simulate", "leverage": "funnel_models.simulate",
    "early_warning": "funnel_models.simulate", "pipeline_outlook": "funnel_models.simulate",
    "backtest": "funnel_models.evaluation.backtest",
    "funnel": "funnel_models.events", "Step": "funnel_models.events",
    "load_parameter_file": "funnel_models.params", "ParameterFile": "funnel_models.params",
}

__all__ = sorted(_LAZY) + [
    "FunnelError", "FunnelDataError", "SpecError", "ModelConfigError", "SimulationError",
    "ParameterError", "ReportError", "FunnelWarning", "__version__",
]


def __getattr__(name: str) -> Any:
    """Import public entry points on first use (PEP 562)."""
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'funnel_models' has no attribute {name!r}")
