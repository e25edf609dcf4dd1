"""Chart data and figures shared by the dashboard and the reports (no widget, no notebook code).

:mod:`funnel_models.charts.flows` turns transitions into flow and funnel tables (pure
pandas); :mod:`funnel_models.charts.figures` draws them with Plotly.
"""
from __future__ import annotations

from .flows import FlowTable, flow_table, funnel_table

__all__ = ["FlowTable", "flow_table", "funnel_table"]
