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

__all__ = ["COLORS", "sankey_figure", "funnel_figure", "figure_html", "base_layout", "cohort_heatmap_figure",
           "time_to_convert_figure", "lead_to_win_figure"]

#: Colours shared by the funnel charts (colour-blind safe: blue, green, grey, vermilion).
COLORS = {"entry": "#0072B2", "stage": "#56B4E9", "won": "#009E73", "lost": "#D55E00",
          "advance": "rgba(0,114,178,0.35)", "skip": "rgba(204,121,167,0.55)",
          "won_link": "rgba(0,158,115,0.45)", "lost_link": "rgba(213,94,0,0.30)", "grid": "#e4e7eb",
          "text": "#1f2933", "muted": "#52606d", "cold": "#8a94a3", "cold_link": "rgba(138,148,163,0.40)"}
_FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def base_layout(title: str, *, height: int = 340, width: int | None = None) -> dict[str, Any]:
    """Layout shared by the funnel charts: title, font, margins, white background (``width``
    None: as wide as the page lets it)."""
    return dict(width=width, title=dict(text=title, x=0.01, xanchor="left", font=dict(size=14, color=COLORS["text"])),
                font=dict(family=_FONT, size=12, color=COLORS["muted"]), height=height,
                margin=dict(l=60, r=20, t=56, b=48), paper_bgcolor="white", plot_bgcolor="white")


def _link_color(kind: str) -> str:
    return {"lost": COLORS["lost_link"], "skip": COLORS["skip"], "cold": COLORS["cold_link"]}.get(kind, COLORS["advance"])


def sankey_figure(flows: FlowTable, *, title: str | None = None, height: int = 380,
                  width: int | None = None) -> Any:
    """A Sankey diagram of the moves of a :class:`FlowTable`.

    Losses go to one "Lost" node per stage they leave from (so the diagram reads left to
    right), leads going cold (a table built with ``cold_after``) to one grey "Gone cold"
    node per stage, skips are drawn in a different colour from advances, and links into "Won"
    are green. Hovering a link shows its count and kind.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    nodes = flows.nodes
    keep = nodes[~nodes["kind"].isin(["lost", "cold"])]
    label = dict(zip(keep["node"], keep["label"]))
    idx = {n: i for i, n in enumerate(keep["node"])}
    K = int((keep["kind"] == "stage").sum())
    xs = [(p + 1) / (K + 1) for p in keep["position"]]
    colors = [COLORS[k] for k in keep["kind"]]
    labels = list(keep["label"])
    src, dst, val, lcol, kinds = [], [], [], [], []
    for r in flows.links.itertuples(index=False):
        if r.target in ("LOST", "COLD"):
            lost_node = f"{r.target}:{r.source}"
            if lost_node not in idx:
                idx[lost_node] = len(labels)
                where = "at entry" if r.source == "ENTRY" else f"{'from' if r.target == 'LOST' else 'in'} {label[r.source]}"
                labels.append(f"{'Lost' if r.target == 'LOST' else 'Gone cold'} {where}")
                colors.append(COLORS["lost"] if r.target == "LOST" else COLORS["cold"])
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
        y=list(table["label"]), x=[int(v) for v in table["leads"]],
        textinfo="value+percent initial",
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


def cohort_heatmap_figure(table: pd.DataFrame, *, title: str | None = None, height: int | None = None,
                          width: int | None = None) -> Any:
    """Two heatmaps of :func:`funnel_models.charts.cohorts.cohort_table`: share won (left)
    and share still open (right), entry month down, months since entry across.

    Each cell is labelled with its share; hovering shows the counts. Months after the
    cut-off are blank.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from .cohorts import cohort_grid
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Share won by then", "Share still open (not won, not lost)"))
    rows = 0
    for col, (value, count, scale) in enumerate((("won_share", "won", "Greens"), ("open_share", "open", "Blues")), 1):
        g = cohort_grid(table, value)
        top = 1.0 if value == "open_share" else max(0.05, float(np.nanmax(g.to_numpy(float))) if len(g) else 1.0)
        n = cohort_grid(table, count)
        leads = cohort_grid(table, "leads")
        rows = len(g)
        text = [[f"{100 * v:.0f}%" if np.isfinite(v) else "" for v in r] for r in g.to_numpy(float)]
        custom = np.dstack([n.to_numpy(float), leads.to_numpy(float)]) if len(g) else None
        fig.add_trace(go.Heatmap(
            z=g.to_numpy(float), x=[str(c) for c in g.columns], y=list(g.index), colorscale=scale, zmin=0, zmax=top,
            text=text, texttemplate="%{text}", textfont=dict(size=10), customdata=custom, showscale=False,
            xgap=1, ygap=1, hovertemplate=f"entered %{{y}}, after %{{x}} month(s): %{{z:.0%}} ({count} "
                                          "%{customdata[0]:,.0f} of %{customdata[1]:,.0f} leads)<extra></extra>"),
            row=1, col=col)
        fig.update_xaxes(title_text="months since entry", row=1, col=col, side="bottom", type="category")
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=col)
    fig.update_yaxes(title_text="entry month", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    h = height or max(300, 26 * rows + 150)
    fig.update_layout(**base_layout(title or "Entry cohorts: how each month's new leads ended up", height=h,
                                    width=width))
    fig.update_layout(margin=dict(l=80, r=20, t=80, b=50))
    return fig


def time_to_convert_figure(table: pd.DataFrame, names: dict[str, str] | None = None, *,
                           title: str | None = None, height: int = 330, width: int | None = None) -> Any:
    """Months in each open stage before leaving it: one small bar chart per stage, stacked
    by how the leads left (moved on, won, lost), from
    :func:`funnel_models.charts.timing.time_to_convert_table` (its ``ENTRY`` rows are
    drawn by :func:`lead_to_win_figure`).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    names = names or {}
    stages = [s for s in dict.fromkeys(table["stage"]) if s != "ENTRY"]
    ticks = _month_ticks(table)[1:]             # a lead seen at a month end stays at least that month
    titles = [str(names.get(s, s)) for s in stages]
    fig = make_subplots(rows=1, cols=max(len(stages), 1), subplot_titles=[t.replace(" ", "<br>", 1) if len(t) > 12
                                                                          else t for t in titles],
                        horizontal_spacing=0.03)
    parts = (("moved_on", "moved on", COLORS["entry"]), ("won", "won", COLORS["won"]), ("lost", "lost", COLORS["lost"]))
    for i, st in enumerate(stages, 1):
        t = table[(table["stage"] == st) & (table["months"] >= 1)]
        for col, label, color in parts:
            fig.add_trace(go.Bar(x=ticks, y=t[col].to_numpy(), name=label, marker_color=color, legendgroup=label,
                                 showlegend=(i == 1), hovertemplate=f"{titles[i - 1]}: %{{y:,}} leads {label} after "
                                                                     "%{x} month(s)<extra></extra>"), row=1, col=i)
        fig.update_xaxes(type="category", tickfont=dict(size=9), nticks=5, row=1, col=i)
    fig.update_annotations(font=dict(size=12))
    fig.update_layout(**base_layout(title or "Months in each stage before leaving it", height=height, width=width))
    fig.update_layout(barmode="stack", margin=dict(l=50, r=10, t=90, b=96), bargap=0.15,
                      legend=dict(orientation="h", y=-0.36, x=0.5, xanchor="center"))
    fig.update_yaxes(title_text="leads", row=1, col=1)
    fig.add_annotation(text="months seen in the stage at a month end (1: gone by the next month end)",
                       xref="paper", yref="paper", x=0.5, y=-0.2, showarrow=False, font=dict(size=11))
    return fig


def _month_ticks(table: pd.DataFrame) -> list[str]:
    top = int(table["months"].max()) if len(table) else 0
    return [str(m) for m in range(top)] + [f"{top}+"]


def lead_to_win_figure(table: pd.DataFrame, *, title: str | None = None, height: int = 320,
                       width: int | None = None) -> Any:
    """Months from a new lead's entry month to its win month, for won leads (bars), with
    the share of wins that came within that many months (line), from the ``ENTRY`` rows of
    :func:`funnel_models.charts.timing.time_to_convert_table`.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    t = table[table["stage"] == "ENTRY"]
    n = t["to_win"].to_numpy(float)
    cum = np.cumsum(n) / n.sum() if n.sum() > 0 else np.full(len(n), np.nan)
    ticks = _month_ticks(table)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=ticks, y=n, name="won leads", marker_color=COLORS["won"],
                         hovertemplate="%{y:,} leads won %{x} month(s) after entering<extra></extra>"))
    fig.add_trace(go.Scatter(x=ticks, y=cum, name="share of wins within that many months", yaxis="y2",
                             mode="lines+markers", line=dict(color=COLORS["text"], width=2),
                             hovertemplate="%{y:.0%} of wins within %{x} month(s)<extra></extra>"))
    fig.update_layout(**base_layout(title or "Months from new lead to win (won leads)", height=height, width=width))
    fig.update_layout(xaxis=dict(title="months from the entry month to the win month (0: won in the entry month)",
                                 type="category"),
                      yaxis=dict(title="won leads", gridcolor=COLORS["grid"], rangemode="tozero"),
                      yaxis2=dict(title="share of wins (cumulative)", overlaying="y", side="right", range=[0, 1.02],
                                  tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1], showgrid=False),
                      legend=dict(orientation="h", y=-0.3, x=0.5, xanchor="center"), margin=dict(r=70, b=90))
    return fig
