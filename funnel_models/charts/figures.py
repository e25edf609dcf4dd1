"""Plotly figures of the funnel's flows: a stage-flow Sankey and a funnel chart.

Both take the tables of :mod:`funnel_models.charts.flows`, so every number drawn is a
number of that table (the tests compare them). They return ``plotly.graph_objects.Figure``
objects; a dashboard wraps them in a ``FigureWidget``, a report writes them with
:func:`figure_html` (plotly.js embedded once per page, never loaded from a CDN).

Examples
--------
>>> import pandas as pd
>>> from funnel_models.charts.flows import flow_table
>>> t = pd.DataFrame({"month": pd.to_datetime(["2024-01-01"] * 3), "from_stage": ["ENTRY", "A", "A"],
...                   "to_stage": ["A", "WON", "LOST"], "n": [10, 3, 2]})
>>> fig = sankey_figure(flow_table(t, ["A"]))
>>> list(fig.data[0].link.value)
[10, 3, 2]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .flows import FlowTable

__all__ = ["COLORS", "sankey_figure", "funnel_figure", "figure_html", "base_layout"]

#: Colours shared by the funnel charts (colour-blind safe: blue, green, grey, vermilion).
COLORS = {"entry": "#0072B2", "stage": "#56B4E9", "won": "#009E73", "lost": "#D55E00",
          "advance": "rgba(0,114,178,0.35)", "skip": "rgba(204,121,167,0.55)",
          "won_link": "rgba(0,158,115,0.45)", "lost_link": "rgba(213,94,0,0.30)", "grid": "#e4e7eb",
          "text": "#1f2933", "muted": "#52606d"}
_FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def base_layout(title: str, *, height: int = 340, width: int | None = None) -> dict[str, Any]:
    """Layout shared by the funnel charts: title, font, margins, white background (``width``
    None: as wide as the page lets it)."""
    return dict(width=width, title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14, color=COLORS["text"])),
                font=dict(family=_FONT, size=12, color=COLORS["muted"]), height=height,
                margin=dict(l=60, r=20, t=56, b=48), paper_bgcolor="white", plot_bgcolor="white")


def _link_color(kind: str) -> str:
    return {"lost": COLORS["lost_link"], "skip": COLORS["skip"]}.get(kind, COLORS["advance"])


def sankey_figure(flows: FlowTable, *, title: str | None = None, height: int = 380,
                  width: int | None = None) -> Any:
    """A Sankey diagram of the moves of a :class:`FlowTable`.

    Losses go to one "Lost" node per stage they leave from (so the diagram reads left to
    right), skips are drawn in a different colour from advances, and links into "Won"
    are green. Hovering a link shows its count and kind.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    nodes = flows.nodes
    keep = nodes[nodes["kind"] != "lost"]
    label = dict(zip(keep["node"], keep["label"]))
    idx = {n: i for i, n in enumerate(keep["node"])}
    K = int((keep["kind"] == "stage").sum())
    xs = [(p + 1) / (K + 1) for p in keep["position"]]
    colors = [COLORS[k] for k in keep["kind"]]
    labels = list(keep["label"])
    src, dst, val, lcol, kinds = [], [], [], [], []
    for r in flows.links.itertuples(index=False):
        if r.target == "LOST":
            lost_node = f"LOST:{r.source}"
            if lost_node not in idx:
                idx[lost_node] = len(labels)
                where = "at entry" if r.source == "ENTRY" else f"from {label[r.source]}"
                labels.append(f"Lost {where}")
                colors.append(COLORS["lost"])
                xs.append(min(0.999, xs[idx[r.source]] + 0.5 / (K + 1)))
            t = idx[lost_node]
        else:
            t = idx[r.target]
        src.append(idx[r.source])
        dst.append(t)
        val.append(int(r.n))
        lcol.append(COLORS["won_link"] if r.target == "WON" else _link_color(r.kind))
        kinds.append(r.kind)
    xs = [min(max(x, 0.001), 0.999) for x in xs]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=labels, color=colors, pad=14, thickness=16, x=xs,
                  line=dict(color="white", width=0.5),
                  hovertemplate="%{label}<br>%{value:,} leads<extra></extra>"),
        link=dict(source=src, target=dst, value=val, color=lcol, customdata=kinds,
                  hovertemplate="%{source.label} → %{target.label}<br>%{value:,} leads (%{customdata})"
                                "<extra></extra>")))
    fig.update_layout(**base_layout(title or f"Stage flows, {flows.period_label()}", height=height, width=width))
    fig.update_layout(margin=dict(l=10, r=10, t=56, b=16))
    return fig


def funnel_figure(table: pd.DataFrame, *, title: str | None = None, period: str = "",
                  height: int = 380, width: int | None = None) -> Any:
    """A funnel chart of :func:`funnel_models.charts.flows.funnel_table`.

    Each bar is the number of leads that reached the stage in the period, labelled with
    the count and its share of the first row.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    kinds = np.where(table["stage"] == "ENTRY", "entry", np.where(table["stage"] == "WON", "won", "stage"))
    fig = go.Figure(go.Funnel(
        y=list(table["label"]), x=[int(v) for v in table["leads"]], textinfo="value+percent initial",
        marker=dict(color=[COLORS[k] for k in kinds]), connector=dict(line=dict(color=COLORS["grid"])),
        hovertemplate="%{y}: %{x:,} leads<br>%{percentInitial:.1%} of new leads, %{percentPrevious:.1%} "
                      "of the row above<extra></extra>"))
    where = f", {period}" if period else ""
    fig.update_layout(**base_layout(title or f"Leads reaching each stage{where}", height=height, width=width))
    fig.update_layout(margin=dict(l=150, r=20, t=56, b=24))
    return fig


def figure_html(fig: Any, *, include_plotlyjs: bool, div_id: str | None = None) -> str:
    """A figure as an HTML ``<div>``; ``include_plotlyjs=True`` embeds plotly.js (once per
    page: pass False for every later figure). Never refers to a CDN."""
    return fig.to_html(full_html=False, include_plotlyjs=bool(include_plotlyjs), div_id=div_id,
                       config={"displaylogo": False, "responsive": True})
