"""The what-if dashboard: ipywidgets controls over the simulator, served with Voila."""
from __future__ import annotations

from .widget import DEFAULT_PARAMS, DashboardState, WhatIfDashboard, find_repo_file, load_params

__all__ = ["WhatIfDashboard", "DashboardState", "DEFAULT_PARAMS", "load_params", "find_repo_file"]
