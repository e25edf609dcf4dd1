"""The what-if dashboard: ipywidgets controls over the simulator, served with Voila.

Modules: :mod:`.settings` (starting values from the parameter file), :mod:`.engine`
(questions -> simulator calls, cached), :mod:`.explain` (the words next to the numbers),
:mod:`.charts` (the live Plotly charts), :mod:`.panels` (HTML cards and tables),
:mod:`.flows_view` (the stage-flow tab) and :mod:`.widget` (the controls and layout).
"""
from __future__ import annotations

from .engine import Answer, Question, WhatIfEngine
from .settings import DashboardSettings, dashboard_settings, load_dashboard_parameters
from .widget import WhatIfDashboard

__all__ = ["WhatIfDashboard", "WhatIfEngine", "Question", "Answer", "DashboardSettings", "dashboard_settings",
           "load_dashboard_parameters"]
