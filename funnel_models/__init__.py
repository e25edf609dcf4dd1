"""funnel_models: Bayesian forecasting and simulation of sales and marketing funnels."""
from __future__ import annotations

from .errors import (FunnelDataError, FunnelError, FunnelWarning, ModelConfigError,
                     ParameterError, ReportError, SimulationError, SpecError)
from .spec import ENTRY, LOST, WON, FunnelSpec, Stage

__version__ = "0.1.0"

__all__ = [
    "FunnelSpec", "Stage", "WON", "LOST", "ENTRY",
    "FunnelError", "FunnelDataError", "SpecError", "ModelConfigError", "SimulationError",
    "ParameterError", "ReportError", "FunnelWarning", "__version__",
]
