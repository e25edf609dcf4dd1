"""The what-if dashboard: ipywidgets controls over :class:`~funnel_models.dashboard.engine.WhatIfEngine`.

Every control maps to a field of a :class:`~funnel_models.dashboard.engine.Question`;
the engine answers it and the outputs show the answer (see the engine's docstring for
the simulator calls). Only the visible tab is computed: the plan (headline, curve, fan
chart) always, the where-to-act ranking and the stage flows when their tab is open.

Examples
--------
>>> from funnel_models.workflow import load_data, fit_model
>>> data = load_data("demo", demo_months=12)
>>> model = fit_model(data, model="conjugate", factors=["region"])
>>> dash = WhatIfDashboard(model, data, target=40, window=6, leads=100, draws=200)
>>> dash.target.value = 50
>>> dash.state.plan.target
50.0
"""
from __future__ import annotations

import html
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ParameterError
from .charts import PlotlyCharts
from .engine import Answer, Question, WhatIfEngine
from .explain import HOW_TO_READ, explanation_html
from .flows_view import FlowsView
from .panels import CSS, headline_cards, leverage_html
from .settings import DashboardSettings, dashboard_settings, load_dashboard_parameters

__all__ = ["WhatIfDashboard"]

_CONV_RANGE = (0.5, 1.5)
_STALL_RANGE = (0.25, 2.0)
#: Tabs of the output area.
TABS = ("Plan", "Where to act", "Stage flows")


class WhatIfDashboard:
    """What-if dashboard: controls -> question -> engine -> outputs.

    Parameters
    ----------
    model, data :
        The fitted model and the data it was fitted on, passed to :class:`WhatIfEngine`.
    target : float, optional
        Starting target in ``target_unit``; None: :func:`funnel_models.simulate.default_target`.
    target_unit : {"wins", "revenue"}
    window, confidence :
        Starting window (months) and required P(hit).
    leads : float, optional
        Planned new leads per month; None: the mean of the last 3 months.
    draws, forecast_draws, leverage_draws, seed, level :
        Passed to the engine.
    title, subtitle : str
    charts : object, optional
        The live charts (default :class:`~funnel_models.dashboard.charts.PlotlyCharts`);
        anything with ``widgets``, ``show(answer)``, ``sync()`` and ``figures()``.
    debug : bool, optional
        Show the Python exception type in error messages (default ``$FUNNEL_DEBUG``).

    Attributes
    ----------
    widget : ipywidgets.Widget
        The whole dashboard (displaying the object displays it).
    state : Answer
        The last answer.
    """

    def __init__(self, model: Any, data: Any, *, target: float | None = None, target_unit: str = "wins",
                 window: int = 6, confidence: float = 0.8, leads: float | None = None, draws: int = 1000,
                 forecast_draws: int = 300, leverage_draws: int = 200, seed: int = 0, level: float = 0.8,
                 title: str = "What-if dashboard", subtitle: str = "", charts: Any = None,
                 debug: bool | None = None) -> None:
        self.engine = WhatIfEngine(model, data, new_leads=leads, draws=draws, forecast_draws=forecast_draws,
                                   leverage_draws=leverage_draws, seed=seed, level=level)
        e = self.engine
        if target_unit not in ("wins", "revenue"):
            raise ParameterError(f"target_unit must be 'wins' or 'revenue', got {target_unit!r}")
        if target_unit == "revenue" and not e.has_value:
            raise ParameterError("target_unit: revenue needs deal values and the data has none; use wins")
        self.debug = bool(os.environ.get("FUNNEL_DEBUG")) if debug is None else bool(debug)
        self.title, self.subtitle = title, subtitle
        company_leads = int(round(e.company_leads))
        self.target_derived = target is None
        if target is None:
            target = e.default_target((), company_leads, int(window), target_unit)
        self.defaults = {"target": float(target), "target_unit": target_unit, "window": int(window),
                         "confidence": float(confidence), "leads": company_leads}
        self._company = {"target": float(target), "leads": company_leads}
        self._suspend = 0
        self.charts = charts if charts is not None else PlotlyCharts(e.start)
        self._build()
        self.recompute()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, model: Any, data: Any, settings: DashboardSettings, **kw: Any) -> "WhatIfDashboard":
        """A dashboard with the starting values of :class:`DashboardSettings`."""
        return cls(model, data, target=settings.target, target_unit=settings.target_unit, window=settings.window,
                   confidence=settings.confidence, leads=settings.new_leads, draws=settings.draws,
                   forecast_draws=settings.forecast_draws, leverage_draws=settings.leverage_draws,
                   seed=settings.seed, level=settings.interval_level, title=settings.title, **kw)

    @classmethod
    def from_params(cls, path: str | Path | None = None, *, params: Any = None, cache_dir: Any = None,
                    **kw: Any) -> "WhatIfDashboard":
        """Load the data, fit (or load the cached fit of) the parameter file's model, build.

        ``path=None`` reads ``parameters/default.yaml`` (or the packaged copy): the same
        defaults as the monthly report. ``params`` (a ParameterFile) replaces the file.
        """
        from ..workflow import from_params
        where = "parameters"
        if params is None:
            params, found = load_dashboard_parameters(path)
            where = str(found)
        data, model = from_params(params, cache_dir=cache_dir)
        name = data.source if data.source in ("demo", "olist") else Path(data.source).name
        sub = f"data: {name} · cut-off {data.cutoff.date()} · {model.description} · parameters: {Path(where).name}"
        dash = cls.from_settings(model, data, dashboard_settings(params), subtitle=sub, **kw)
        dash.params = params
        return dash

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        import ipywidgets as W
        d, e = self.defaults, self.engine
        full, sty = W.Layout(width="100%"), {"description_width": "130px"}
        self.target_unit = W.ToggleButtons(options=[("Wins", "wins"), ("Revenue", "revenue")], value=d["target_unit"],
                                           description="Target in", style={**sty, "button_width": "80px"},
                                           disabled=not e.has_value)
        self.target = W.BoundedFloatText(value=d["target"], min=0, max=1e12, step=1, description="Target (absolute)",
                                         style=sty, layout=full)
        self.window = W.IntSlider(value=d["window"], min=1, max=max(24, d["window"]), description="Window (months)",
                                  style=sty, layout=full, continuous_update=False)
        self.confidence = W.FloatSlider(value=d["confidence"], min=0.5, max=0.99, step=0.01, readout_format=".0%",
                                        description="Required P(hit)", style=sty, layout=full, continuous_update=False)
        self.leads = W.BoundedIntText(value=d["leads"], min=0, max=1_000_000, description="Planned leads / mo",
                                      style=sty, layout=full)
        self.segment_controls = {f: W.Dropdown(options=["all", *lv], value="all", description=f, style=sty,
                                               layout=full) for f, lv in e.segments.items()}

        def slider(s: str, name: str, rng: tuple[float, float]) -> Any:
            return W.FloatSlider(value=1.0, min=rng[0], max=rng[1], step=0.05, description=f"{s} ×",
                                 readout_format=".2f", style={"description_width": "70px"}, layout=full,
                                 continuous_update=False, tooltip=name)
        self.conversion = {s: slider(s, n, _CONV_RANGE) for s, n in zip(e.stages, e.names)}
        self.stall = {s: slider(s, n, _STALL_RANGE) for s, n in zip(e.stages, e.names)}
        self.reset = W.Button(description="Reset", icon="undo", tooltip="restore the starting values",
                              layout=W.Layout(width="120px"))
        self.header, self.status, self.message, self.error = W.HTML(), W.HTML(), W.HTML(layout=full), W.HTML(layout=full)
        card = W.Layout(flex="1 1 0", min_width="190px")
        self.leads_needed_out, self.p_hit_out, self.naive_out = W.HTML(layout=card), W.HTML(layout=card), W.HTML(layout=card)
        self.why = W.HTML(layout=full)
        self.leverage_out = W.HTML(layout=full)
        self.flows = FlowsView(e)
        self._classes()
        self._layout(W)
        self._observe()

    def _classes(self) -> None:
        classes = {
            self.target: "funnel-target", self.target_unit: "funnel-target-unit", self.window: "funnel-window",
            self.confidence: "funnel-confidence", self.leads: "funnel-leads", self.reset: "funnel-reset",
            self.leads_needed_out: "funnel-leads-needed", self.p_hit_out: "funnel-p-hit",
            self.naive_out: "funnel-naive", self.leverage_out: "funnel-leverage", self.message: "funnel-message",
            self.error: "funnel-error", self.status: "funnel-status", self.header: "funnel-header",
            self.why: "funnel-explain",
        }
        for w, c in classes.items():
            w.add_class(c)
        for w in (self.leads_needed_out, self.p_hit_out, self.naive_out):
            w.add_class("funnel-kpi")
        for f, w in self.segment_controls.items():
            w.add_class("funnel-segment")
            w.add_class(f"funnel-segment-{f}")
        for s in self.engine.stages:
            self.conversion[s].add_class(f"funnel-conversion-{s}")
            self.stall[s].add_class(f"funnel-stall-{s}")

    def _layout(self, W: Any) -> None:
        full = W.Layout(width="100%")

        def h(text: str) -> Any:
            return W.HTML(f"<h4>{html.escape(text)}</h4>")
        stage_box = W.Accordion(children=[
            W.VBox([W.HTML("<span class='funnel-note'>Relative: multiplies each stage's conversion (share moving "
                           "on rather than lost); 1.10 = 10% more.</span>"), *self.conversion.values()]),
            W.VBox([W.HTML("<span class='funnel-note'>Relative: multiplies the months prospects stay in each "
                           "stage; 0.5 = half as long.</span>"), *self.stall.values()]),
        ], selected_index=None, layout=full)
        stage_box.set_title(0, "Conversion × (relative)")
        stage_box.set_title(1, "Months in stage × (relative)")
        children = [h("Target"), self.target_unit, self.target, self.window, self.confidence, h("Plan"), self.leads]
        if self.segment_controls:
            children += [h("Segment"), *self.segment_controls.values()]
        children += [h("Stage assumptions"), stage_box, W.HBox([self.reset], layout=W.Layout(margin="8px 0 0 0"))]
        controls = W.VBox(children, layout=W.Layout(width="330px", min_width="300px", flex="0 0 330px"))
        controls.add_class("funnel-controls")
        row = W.Layout(width="100%", grid_gap="10px", flex_flow="row wrap")
        kpis = W.HBox([self.leads_needed_out, self.p_hit_out, self.naive_out], layout=row)
        boxes = []
        for w, c in zip(self.charts.widgets, ("funnel-curve", "funnel-fan")):
            boxes.append(W.Box([w], layout=W.Layout(flex="0 0 auto")))
            boxes[-1].add_class("funnel-chart")
            boxes[-1].add_class(c)
        plan_tab = W.VBox([W.HBox(boxes, layout=row)], layout=full)
        lever_tab = W.VBox([W.HTML("<span class='funnel-note'>Extra wins per month over the window from improving "
                                   "one stage at a time, under the current assumptions.</span>"), self.leverage_out])
        self.tabs = W.Tab(children=[plan_tab, lever_tab, self.flows.widget], layout=full)
        for i, name in enumerate(TABS):
            self.tabs.set_title(i, name)
        self.tabs.add_class("funnel-tabs")
        outputs = W.VBox([kpis, self.error, self.why, self.message, self.tabs, W.HTML(HOW_TO_READ)],
                         layout=W.Layout(flex="1 1 0", min_width="0", grid_gap="8px", padding="0 0 0 12px"))
        top = W.HBox([self.header, self.status], layout=W.Layout(justify_content="space-between",
                                                                    align_items="flex-end", width="100%"))
        self.widget = W.VBox([W.HTML(CSS), top, W.HBox([controls, outputs], layout=full)], layout=full)
        self.widget.add_class("funnel-dashboard")

    def _observe(self) -> None:
        for w in (self.target, self.window, self.confidence, self.leads, *self.conversion.values(),
                  *self.stall.values()):
            w.observe(self._on_change, names="value")
        for w in self.segment_controls.values():
            w.observe(self._on_segment, names="value")
        self.target_unit.observe(self._on_unit, names="value")
        self.tabs.observe(lambda _c: self._show_tab(), names="selected_index")
        self.flows.months.observe(lambda _c: self._show_tab(), names="value")
        self.reset.on_click(lambda _b: self.reset_controls())

    # ------------------------------------------------------------------ events
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Change several controls with one recompute at the end."""
        self._suspend += 1
        try:
            yield
        finally:
            self._suspend -= 1
        if not self._suspend:
            self.recompute()

    def _on_change(self, change: Any = None) -> None:
        if self._suspend:
            return
        if not self.current_segment() and change is not None and change.get("owner") in (self.target, self.leads):
            self._company["target" if change["owner"] is self.target else "leads"] = float(change["new"])
        self.recompute()

    def _on_segment(self, _change: Any = None) -> None:
        """A segment gets its share of the planned leads and its own target."""
        if self._suspend:
            return
        seg = tuple(sorted(self.current_segment().items()))
        label = ", ".join(f"{k}={v}" for k, v in seg) or "all leads"
        self._set_status(f"⏳ Drawing the answers for {label}…", busy=True)
        e = self.engine
        leads = int(round(self._company["leads"] * e.lead_share(seg)))
        try:
            target = e.segment_target(seg, self._company["target"], derived=self.target_derived, leads=leads,
                                      window=int(self.window.value), unit=self.target_unit.value)
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the page
            target = self._company["target"]
            self._set_status(f"segment target unavailable: {exc}")
        with self.batch():
            self.leads.value = leads
            self.target.value = float(target)

    def _on_unit(self, change: Any) -> None:
        """Convert the target between wins and revenue with the mean deal value."""
        if self._suspend:
            return
        value = self.engine.mean_deal_value(tuple(sorted(self.current_segment().items())))
        t = float(self.target.value)
        new = t * value if change["new"] == "revenue" else t / value
        step = 10.0 ** max(0, int(np.floor(np.log10(max(new, 1.0)))) - 2)
        with self.batch():
            self.target.value = float(round(new / step) * step)
        if not self.current_segment():
            self._company["target"] = float(self.target.value)

    def reset_controls(self) -> None:
        """Restore every control to its starting value (one recompute)."""
        d = self.defaults
        with self.batch():
            self.target_unit.value = d["target_unit"]
            self.target.value = d["target"]
            self.window.value = d["window"]
            self.confidence.value = d["confidence"]
            self.leads.value = d["leads"]
            for w in self.segment_controls.values():
                w.value = "all"
            for w in (*self.conversion.values(), *self.stall.values()):
                w.value = 1.0
        self._company = {"target": d["target"], "leads": d["leads"]}

    def current_segment(self) -> dict[str, str]:
        """factor -> level of the dropdowns not at "all"."""
        return {f: w.value for f, w in self.segment_controls.items() if w.value != "all"}

    def question(self) -> Question:
        """The question the controls ask."""
        def moved(ws: dict) -> dict:
            return {s: float(w.value) for s, w in ws.items() if float(w.value) != 1.0}
        return Question(target=float(self.target.value), window=int(self.window.value),
                        confidence=float(self.confidence.value), leads=int(self.leads.value),
                        target_unit=self.target_unit.value).with_(
            segment=self.current_segment(), conversion=moved(self.conversion), stall=moved(self.stall))

    # ------------------------------------------------------------------ recompute
    def recompute(self) -> Answer:
        """Answer the controls' question and refresh the visible outputs."""
        t0 = time.perf_counter()
        q = self.question()
        a = self.engine.answer(q)
        self.state = a
        self._render(a)
        self._show_tab()
        ms = 1000 * (time.perf_counter() - t0)
        self._set_status(f"Error after {ms:.0f} ms" if a.error else f"Updated in {ms:.0f} ms")
        return a

    def _show_tab(self) -> None:
        """Compute and draw the open tab's extra outputs (ranking, flows)."""
        if self._suspend or getattr(self, "state", None) is None:
            return
        q, tab = self.state.question, self.tabs.selected_index
        try:
            if tab == 1:
                self.state.leverage = self.engine.leverage(q, self.state.timings)
                self.leverage_out.value = leverage_html(self.state.leverage, self.engine.level)
            elif tab == 2:
                self.flows.show(q.segment)
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the page
            self.error.value = f"<div>{html.escape(self._error_text(exc))}</div>"

    def _error_text(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}" if self.debug else str(exc)

    def _set_status(self, text: str, busy: bool = False) -> None:
        self.status.value = html.escape(text)
        (self.status.add_class if busy else self.status.remove_class)("busy")

    def _render(self, a: Answer) -> None:
        q = a.question
        seg = ", ".join(f"{k}={v}" for k, v in q.segment) or "all leads"
        sub = " · ".join(x for x in (self.subtitle, f"segment: {seg}", f"{self.engine.draws} posterior draws") if x)
        self.header.value = f"<h2>{html.escape(self.title)}</h2><div class='sub'>{html.escape(sub)}</div>"
        self.leads_needed_out.value, self.p_hit_out.value, self.naive_out.value = headline_cards(a)
        if a.error or a.plan is None:
            msg = a.error if self.debug else (a.error or "").split(": ", 1)[-1]
            self.error.value = f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(msg)}</pre>"
            self.why.value = self.message.value = ""
            self.charts.show(a)
            return
        self.error.value = ""
        dv = self.engine.mean_deal_value(q.segment) if q.target_unit == "revenue" else float("nan")
        self.why.value = explanation_html(a, dv)
        self.message.value = html.escape(a.plan.message[0].upper() + a.plan.message[1:]) + "."
        self.charts.show(a)

    # ------------------------------------------------------------------ display
    def snapshot_html(self) -> str:
        """A static HTML copy of the current outputs, with plotly.js embedded once (no CDN)."""
        from ..charts.figures import figure_html
        cards = "".join(f"<div class='funnel-kpi' style='flex:1 1 0;min-width:180px'>{w.value}</div>"
                        for w in (self.leads_needed_out, self.p_hit_out, self.naive_out))
        figs = "".join(f"<div class='funnel-chart' style='flex:1 1 0;min-width:320px'>"
                       f"{figure_html(f, include_plotlyjs=(i == 0))}</div>"
                       for i, f in enumerate(self.charts.figures()))
        return (f"{CSS}<div class='funnel-dashboard'><div class='funnel-header'>{self.header.value}</div>"
                f"<div style='display:flex;gap:10px;flex-wrap:wrap'>{cards}</div>"
                f"<div class='funnel-error'>{self.error.value}</div>{self.why.value}"
                f"<p class='funnel-message'>{self.message.value}</p>"
                f"<div style='display:flex;gap:10px;flex-wrap:wrap'>{figs}</div></div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.charts.sync()
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        self.charts.sync()
        display(self.widget)

