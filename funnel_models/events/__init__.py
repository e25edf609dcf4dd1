"""Event-log funnels (issue 7): PostHog-style funnels over raw event logs, in DuckDB.

>>> from funnel_models.events import funnel, Step, synthetic_events
>>> ev = synthetic_events(200, seed=1)
>>> res = funnel(ev, ["ad_click", "landing_view", "signup"], window="14d")
>>> int(res.counts.iloc[0]) > 0
True

See :mod:`funnel_models.events.engine` for the semantics and
:mod:`funnel_models.events.plots` for the charts.
"""
from __future__ import annotations

from .engine import ATTRIBUTIONS, ORDERS, Step, funnel, parse_duration
from .result import NONE_LABEL, FunnelResult
from .synth import synthetic_events, write_events_parquet

__all__ = [
    "funnel", "Step", "FunnelResult", "parse_duration", "synthetic_events",
    "write_events_parquet", "ORDERS", "ATTRIBUTIONS", "NONE_LABEL",
]
