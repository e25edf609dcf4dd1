"""funnel_models: Bayesian forecasting and simulation of sales and marketing funnels."""
from __future__ import annotations

import warnings as _warnings

# ArviZ 0.23 announces its 1.x refactor on import; our access goes through
# model/idata_access.py, so the notice says nothing actionable to our users.
_warnings.filterwarnings("ignore", message="\nArviZ is undergoing a major refactor", category=FutureWarning)

from .errors import (FunnelDataError, FunnelError, FunnelWarning, ModelConfigError,
                     ParameterError, ReportError, SimulationError, SpecError)
from .data.spec import ENTRY, LOST, WON, FunnelSpec, Stage

__version__ = "0.1.0"

__all__ = [
    "FunnelSpec", "Stage", "WON", "LOST", "ENTRY",
    "FunnelError", "FunnelDataError", "SpecError", "ModelConfigError", "SimulationError",
    "ParameterError", "ReportError", "FunnelWarning", "__version__",
]
