"""Event-log funnels (issue 7): PostHog-style funnels over raw event logs, on Ibis engines.

>>> from funnel_models.events import funnel, Step, synthetic_events
>>> ev = synthetic_events(200, seed=1)
>>> res = funnel(ev, ["ad_click", "landing_view", "signup"], window="14d")
>>> int(res.counts.iloc[0]) > 0
True

See :mod:`funnel_models.events.engine` for the semantics, :mod:`~funnel_models.events.source`
for the inputs (DataFrame, files, Ibis tables, DuckDB, Spark),
:mod:`~funnel_models.events.insights` for correlation analysis and
:mod:`funnel_models.events.plots` for the charts.
"""
from __future__ import annotations

from .engine import compare_periods, funnel
from .query import ATTRIBUTIONS, NONE_LABEL, ORDERS, OTHER_LABEL, FunnelQuery, Step, parse_duration
from .result import FunnelResult
from .synth import synthetic_events, write_events_parquet

__all__ = [
    "funnel", "compare_periods", "Step", "FunnelResult", "FunnelQuery", "parse_duration",
    "synthetic_events", "write_events_parquet", "ORDERS", "ATTRIBUTIONS", "NONE_LABEL",
    "OTHER_LABEL",
]
