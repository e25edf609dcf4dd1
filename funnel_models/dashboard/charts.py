"""The dashboard's two live charts as Plotly ``FigureWidget`` objects.

:class:`PlotlyCharts` owns the P(hit) curve and the forecast fan chart. Both are built
once; a control change only replaces trace data and axis ranges inside one
``batch_update`` per figure (one message to the browser each), which
``benchmarks/bench_dashboard.py`` times against the hand-written SVG charts of the first
release. The widgets load Plotly's JavaScript from the installed package (anywidget), so
the dashboard works without internet access.

The pure helpers (:func:`curve_marks`, :func:`fan_series`) decide what is drawn; the
tests check their geometry (the curve spans the axis, every point lies inside it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..charts.figures import COLORS, base_layout
from .engine import FAN_LEVELS, Answer

__all__ = ["PlotlyCharts", "CurveMark", "curve_marks", "fan_series", "fmt_number", "PLOT_CONFIG"]

#: Plotly options of every dashboard figure (no logo, PNG export at twice the size).
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
_BLUE, _NAVY = "#0072B2", "#1e3a8a"
#: Width and height of each live chart in pixels: two side by side beside the controls at 1366 px.
CHART_SIZE = (470, 380)
_MARK_COLORS = {"needed": "#009E73", "planned": "#D55E00", "spreadsheet": "#CC79A7", "today": "#7b8794"}


def fmt_number(v: float | None, decimals: int = 0) -> str:
    """Compact label: ``1.23M``, ``45.6k`` or ``1,234`` (an en dash when missing).

    >>> fmt_number(12_345), fmt_number(None), fmt_number(980.4)
    ('12.3k', '–', '980')
    """
    if v is None or not np.isfinite(v):
        return "–"
    av = abs(v)
    if av >= 1e6:
        return f"{v / 1e6:.3g}M"
    if av >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:,.{decimals}f}"


@dataclass(frozen=True)
class CurveMark:
    """A point the P(hit) curve marks: ``x`` leads per month, ``y`` its P(hit);
    ``inside`` is False when it lies beyond the axis (then shown as an arrow at the edge)."""

    kind: str
    label: str
    x: float
    y: float
    inside: bool


def curve_marks(a: Answer) -> list[CurveMark]:
    """The marked points of the curve: leads needed, planned leads, the spreadsheet plan
    and today's volume (its P(hit) read off the same problem)."""
    plan, q = a.plan, a.question
    marks = []
    if plan.feasible and plan.leads is not None:
        marks.append(("needed", f"needed {plan.leads:,}", plan.leads, plan.probability))
    marks.append(("planned", f"planned {q.leads:,}: {a.p_hit:.0%}", q.leads, a.p_hit))
    if plan.naive_leads is not None:
        marks.append(("spreadsheet", f"spreadsheet {plan.naive_leads:,}: {plan.naive_probability:.0%}",
                      plan.naive_leads, plan.naive_probability))
    if np.isfinite(a.volume):
        marks.append(("today", f"today {a.volume:,.0f}/mo", a.volume, np.nan))
    return [CurveMark(k, lab, float(x), float(y), bool(0 <= x <= a.domain)) for k, lab, x, y in marks]


def fan_series(fan: pd.DataFrame) -> dict[str, np.ndarray]:
    """Month 0..T and the cumulative mean and band edges, starting from 0 at the cut-off."""
    out = {"month": np.r_[0, fan["month"].to_numpy(float)], "mean": np.r_[0.0, fan["mean"].to_numpy(float)]}
    for lv in FAN_LEVELS:
        tag = f"{100 * lv:g}"
        out[f"lo_{tag}"] = np.r_[0.0, fan[f"lo_{tag}"].to_numpy(float)]
        out[f"hi_{tag}"] = np.r_[0.0, fan[f"hi_{tag}"].to_numpy(float)]
    return out


def _curve_layout() -> dict[str, Any]:
    lay = base_layout("P(hit the target) against new leads per month", height=CHART_SIZE[1])
    lay["width"] = CHART_SIZE[0]
    lay.update(xaxis=dict(title="new leads per month (absolute)", rangemode="tozero", gridcolor=COLORS["grid"],
                          zeroline=False),
               yaxis=dict(title="P(hit the target)", tickformat=".0%", range=[0, 1.05], gridcolor=COLORS["grid"]),
               legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"), hovermode="closest",
               margin=dict(l=60, r=20, t=40, b=40))
    return lay


def _fan_layout() -> dict[str, Any]:
    lay = base_layout("Cumulative wins: forecast with the planned leads", height=CHART_SIZE[1])
    lay["width"] = CHART_SIZE[0]
    lay.update(xaxis=dict(title="end of month", gridcolor=COLORS["grid"], zeroline=False),
               yaxis=dict(title="cumulative wins", rangemode="tozero", gridcolor=COLORS["grid"]),
               legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"), hovermode="x unified",
               margin=dict(l=60, r=20, t=40, b=40))
    return lay


class PlotlyCharts:
    """The P(hit) curve and the fan chart, updated in place.

    Parameters
    ----------
    start : Timestamp
        The cut-off month (month 0 of the fan chart).
    """

    def __init__(self, start: pd.Timestamp) -> None:
        import plotly.graph_objects as go
        self.start = pd.Timestamp(start)
        self.curve = go.FigureWidget(layout=_curve_layout())
        self.curve.add_scatter(name="P(hit)", mode="lines", line=dict(color=_BLUE, width=3),
                               hovertemplate="%{x:,} leads/month: P(hit) %{y:.0%}<extra></extra>")
        self.curve.add_scatter(name="required", mode="lines", line=dict(color="#b45309", dash="dash", width=1.5),
                               hoverinfo="skip")
        for kind in ("needed", "planned", "spreadsheet"):
            self.curve.add_scatter(name=kind, mode="markers",
                                   marker=dict(size=11, color=_MARK_COLORS[kind], line=dict(color="white", width=1.5),
                                               symbol={"needed": "diamond", "planned": "circle",
                                                       "spreadsheet": "square"}[kind]),
                                   textfont=dict(color=_MARK_COLORS[kind]),
                                   hovertemplate="%{text}<extra></extra>")
        self.curve.add_scatter(name="today's volume", mode="lines", hoverinfo="skip",
                               line=dict(color=_MARK_COLORS["today"], dash="dot", width=1.5))
        self.fan = go.FigureWidget(layout=_fan_layout())
        for lv, op in zip(FAN_LEVELS[::-1], (0.15, 0.25, 0.4)):
            self.fan.add_scatter(name=f"{lv:.0%} upper", mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip")
            self.fan.add_scatter(name=f"{lv:.0%} interval", mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=f"rgba(0,114,178,{op})", hoverinfo="skip")
        self.fan.add_scatter(name="expected", mode="lines+markers", line=dict(color=_NAVY, width=2.5),
                             marker=dict(size=5), hovertemplate="%{y:,.0f}<extra>expected</extra>")
        self.fan.add_scatter(name="target", mode="lines", line=dict(color="#D55E00", dash="dash", width=1.5),
                             hovertemplate="%{y:,.0f}<extra>target</extra>")

    @property
    def widgets(self) -> tuple[Any, Any]:
        """The two figure widgets (curve, fan)."""
        return self.curve, self.fan

    def show(self, a: Answer) -> None:
        """Draw the answer (clears both charts when there is none)."""
        if a.error is not None or a.plan is None:
            self.clear()
            return
        self._show_curve(a)
        self._show_fan(a)

    def clear(self) -> None:
        """Empty both charts."""
        for fig in self.widgets:
            with fig.batch_update():
                for tr in fig.data:
                    tr.x, tr.y = [], []

    def _show_curve(self, a: Answer) -> None:
        q, c, dom = a.question, a.curve, float(a.domain)
        marks = {m.kind: m for m in curve_marks(a)}
        with self.curve.batch_update():
            d = self.curve.data
            d[0].x, d[0].y = c["leads"].to_numpy(), c["probability"].to_numpy()
            d[1].x, d[1].y, d[1].name = [0, dom], [q.confidence, q.confidence], f"required {q.confidence:.0%}"
            for i, kind in enumerate(("needed", "planned", "spreadsheet"), start=2):
                m = marks.get(kind)
                show = m is not None and m.inside
                d[i].x, d[i].y = ([m.x], [m.y]) if show else ([], [])
                d[i].text = [m.label] if show else []
                d[i].name = m.label if m is not None else kind
                d[i].showlegend = m is not None
            today = marks.get("today")
            show = today is not None and today.inside
            d[5].x, d[5].y = ([today.x, today.x], [0, 1]) if show else ([], [])
            d[5].name = today.label if today is not None else "today's volume"
            self.curve.layout.xaxis.range = [0, dom]
            self.curve.layout.annotations = [
                dict(x=1, xref="paper", y=0.08 + 0.1 * j, yref="paper", xanchor="right", showarrow=False,
                     text=f"{m.label} (off the chart) →", font=dict(color=_MARK_COLORS[m.kind], size=11))
                for j, m in enumerate(m for m in marks.values() if not m.inside)]

    def _show_fan(self, a: Answer) -> None:
        q = a.question
        unit = "revenue" if q.target_unit == "revenue" else "wins"
        with self.fan.batch_update():
            d = self.fan.data
            if a.fan is None:
                for tr in d:
                    tr.x, tr.y = [], []
                return
            s = fan_series(a.fan)
            x = s["month"]
            for j, lv in enumerate(FAN_LEVELS[::-1]):
                tag = f"{100 * lv:g}"
                d[2 * j].x, d[2 * j].y = x, s[f"hi_{tag}"]
                d[2 * j + 1].x, d[2 * j + 1].y = x, s[f"lo_{tag}"]
            d[6].x, d[6].y = x, s["mean"]
            d[7].x, d[7].y, d[7].name = [0, x[-1]], [q.target, q.target], f"target {fmt_number(q.target)}"
            every = max(1, int(np.ceil(len(x) / 7)))          # at most 7 month labels: never slanted
            shown = x[::every]
            ticks = [self.start + pd.DateOffset(months=int(m)) for m in shown]
            self.fan.layout.xaxis.update(tickvals=list(shown), ticktext=[t.strftime("%b %y") for t in ticks],
                                         range=[0, x[-1]], tickangle=0)
            top = max(float(s["hi_95"].max()), q.target) * 1.08
            self.fan.layout.yaxis.update(range=[0, top or 1.0], title=f"cumulative {unit}")
            self.fan.layout.title.text = f"Cumulative {unit}: forecast with the planned leads"

    def sync(self) -> None:
        """Copy the figures' current state into the widget state a new view renders from.

        Plotly sends later changes as update messages, which only views that already exist
        receive; a ``FigureWidget`` displayed inside another widget (rather than on its own,
        where Plotly does this itself) must be synced before it is displayed.
        """
        from copy import deepcopy
        for fig in self.widgets:
            fig._widget_layout = deepcopy(fig._layout_obj._props)
            fig._widget_data = deepcopy(fig._data)

    def figures(self) -> list[Any]:
        """Static copies of the charts (for the HTML snapshot)."""
        import plotly.graph_objects as go
        return [go.Figure(f) for f in self.widgets]

