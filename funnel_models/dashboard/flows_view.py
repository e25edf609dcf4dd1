"""The "Stage flows" tab: a Sankey diagram of the moves between stages and a funnel chart.

Both are drawn from :func:`funnel_models.charts.flows.flow_table` over the last months to
the cut-off (3, 6, 12 or all, chosen in the tab) for the selected segment. The figures
are built the first time the tab opens and updated in place afterwards.
"""
from __future__ import annotations

from typing import Any

from ..charts.figures import funnel_figure, sankey_figure
from ..charts.flows import funnel_table

__all__ = ["FlowsView", "PERIODS"]

#: Widths of the Sankey and the funnel chart in pixels (side by side beside the controls at 1366 px).
SIZES = (540, 380)
#: Choices of the period: label -> months (None: every month of the data).
PERIODS = {"last 3 months": 3, "last 6 months": 6, "last 12 months": 12, "all months": None}


class FlowsView:
    """Sankey and funnel chart of the engine's transitions (see the module docstring)."""

    def __init__(self, engine: Any) -> None:
        import ipywidgets as W
        self.engine = engine
        self.months = W.Dropdown(options=list(PERIODS.items()), value=12, description="Flows over",
                                 style={"description_width": "80px"}, layout=W.Layout(width="260px"))
        self.months.add_class("funnel-flow-period")
        self.note = W.HTML()
        self.note.add_class("funnel-note")
        self.box = W.HBox([], layout=W.Layout(width="100%", grid_gap="10px", flex_flow="row wrap"))
        self.widget = W.VBox([W.HBox([self.months, self.note]), self.box], layout=W.Layout(width="100%"))
        self.sankey: Any = None
        self.funnel: Any = None
        self.table: Any = None

    def show(self, segment: tuple) -> None:
        """Draw the flows of ``segment`` over the chosen period."""
        import plotly.graph_objects as go
        import ipywidgets as W
        flows = self.engine.flows(segment, self.months.value)
        if flows is None:
            self.note.value = "Aggregate counts have no lead-level moves to draw."
            return
        label = ", ".join(f"{k}={v}" for k, v in segment) or "all leads"
        period = flows.period_label()
        self.table = funnel_table(flows)
        sankey = sankey_figure(flows, title=f"Stage flows, {period} ({label})", width=SIZES[0])
        funnel = funnel_figure(self.table, period=period, width=SIZES[1])
        self.note.value = (f"{flows.total:,} moves of {label} between {period}; staying in a stage is not a move. "
                           "Hover a band for its count.")
        if self.sankey is None:
            self.sankey, self.funnel = go.FigureWidget(sankey), go.FigureWidget(funnel)
            boxes = [W.Box([self.sankey], layout=W.Layout(flex="0 0 auto")),
                     W.Box([self.funnel], layout=W.Layout(flex="0 0 auto"))]
            for b, c in zip(boxes, ("funnel-sankey", "funnel-funnel")):
                b.add_class("funnel-chart")
                b.add_class(c)
            self.box.children = boxes
            return
        for live, new in ((self.sankey, sankey), (self.funnel, funnel)):
            with live.batch_update():
                live.data[0].update(new.data[0].to_plotly_json())
                live.layout.title.text = new.layout.title.text
