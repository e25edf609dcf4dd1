"""Baseline of bench_dashboard.py: the first release's hand-written SVG charts.

The dashboard drew its P(hit) curve and fan chart as inline SVG strings in two
``ipywidgets.HTML`` outputs. This is that drawing code (from ``funnel_models/dashboard/
charts.py`` of the first release), behind the same interface as
:class:`funnel_models.dashboard.charts.PlotlyCharts` (``widgets``, ``show(answer)``), so
the benchmark times both chart paths on the same answers in the same run. It is not used
by the package.
"""
from __future__ import annotations

import html
import math
from typing import Callable, Sequence

import numpy as np

from funnel_models.dashboard.charts import fan_series, fmt_number
from funnel_models.dashboard.engine import Answer


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-9, step)


class SvgPlot:
    """A minimal SVG plot (axes, grid, polygons, lines) that scales with its container.

    Parameters
    ----------
    xlim, ylim : tuple of float
        Data ranges mapped onto the plot area.
    width, height : int
        Size of the SVG ``viewBox`` (the rendered chart scales to its container).
    xlabel, ylabel, title : str
        Axis labels and the title (escaped on output).
    yfmt : callable
        Label of a y tick.

    Notes
    -----
    Elements are appended to ``parts`` in call order, so later calls draw on top.
    """

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float], *, width: int = 520,
                 height: int = 300, xlabel: str = "", ylabel: str = "", title: str = "",
                 yfmt: Callable[[float], str] = fmt_number) -> None:
        self.w, self.h = width, height
        self.m = (48, 14, 44, 58)  # top, right, bottom, left
        self.x0, self.x1 = xlim
        self.y0, self.y1 = ylim
        self.parts: list[str] = []
        self.title, self.xlabel, self.ylabel, self.yfmt = title, xlabel, ylabel, yfmt

    def px(self, x: float) -> float:
        """Horizontal SVG coordinate of data value ``x``."""
        t, r, b, l = self.m
        return l + (x - self.x0) / (self.x1 - self.x0 or 1.0) * (self.w - l - r)

    def py(self, y: float) -> float:
        """Vertical SVG coordinate of data value ``y``."""
        t, r, b, l = self.m
        return self.h - b - (y - self.y0) / (self.y1 - self.y0 or 1.0) * (self.h - t - b)

    def axes(self, xticks: Sequence[float], yticks: Sequence[float],
             xfmt: Callable[[float], str] = fmt_number) -> None:
        """Draw horizontal grid lines with y labels, x ticks with labels, axis labels and title."""
        t, r, b, l = self.m
        p = self.parts
        for y in yticks:
            yy = self.py(y)
            p.append(f'<line x1="{l}" x2="{self.w - r}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e7eb"/>')
            p.append(f'<text x="{l - 6}" y="{yy + 4:.1f}" text-anchor="end">{html.escape(self.yfmt(y))}</text>')
        for x in xticks:
            xx = self.px(x)
            p.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{self.h - b}" y2="{self.h - b + 4}" stroke="#888"/>')
            p.append(f'<text x="{xx:.1f}" y="{self.h - b + 17}" text-anchor="middle">{html.escape(xfmt(x))}</text>')
        p.append(f'<line x1="{l}" x2="{self.w - r}" y1="{self.h - b}" y2="{self.h - b}" stroke="#888"/>')
        p.append(f'<text x="{(l + self.w - r) / 2:.1f}" y="{self.h - 6}" text-anchor="middle">{html.escape(self.xlabel)}</text>')
        p.append(f'<text x="14" y="{(t + self.h - b) / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(t + self.h - b) / 2:.1f})">{html.escape(self.ylabel)}</text>')
        p.append(f'<text x="{l}" y="18" class="svg-title">{html.escape(self.title)}</text>')

    def band(self, xs: Sequence[float], lo: Sequence[float], hi: Sequence[float], color: str, opacity: float) -> None:
        """Fill the area between ``lo`` and ``hi`` over ``xs``."""
        pts = [f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(xs, hi)]
        pts += [f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(reversed(list(xs)), reversed(list(lo)))]
        self.parts.append(f'<polygon points="{" ".join(pts)}" fill="{color}" fill-opacity="{opacity}" stroke="none"/>')

    def line(self, xs: Sequence[float], ys: Sequence[float], color: str, width: float = 2.0, dash: str = "") -> None:
        """Draw a polyline through ``(xs, ys)`` (``dash``: an SVG ``stroke-dasharray``)."""
        pts = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(xs, ys))
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"{d}/>')

    def hline(self, y: float, color: str, label: str) -> None:
        """Draw a dashed horizontal reference line at ``y`` with a label above it."""
        t, r, b, l = self.m
        yy = self.py(y)
        self.parts.append(f'<line x1="{l}" x2="{self.w - r}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{color}" '
                          'stroke-width="1.5" stroke-dasharray="5 4"/>')
        self.parts.append(f'<text x="{l + 4}" y="{yy - 5:.1f}" fill="{color}">{html.escape(label)}</text>')

    def vline(self, x: float, color: str) -> None:
        """Draw a dashed vertical reference line at ``x``."""
        t, r, b, l = self.m
        xx = self.px(x)
        self.parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{t}" y2="{self.h - b}" stroke="{color}" '
                          'stroke-width="1.5" stroke-dasharray="4 3"/>')

    def dot(self, x: float, y: float, color: str) -> None:
        """Draw a marker at ``(x, y)``."""
        self.parts.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="5" fill="{color}" '
                          'stroke="white" stroke-width="1.5"/>')

    def legend(self, items: Sequence[tuple[str, str, str]]) -> None:
        """Draw a one-row legend below the title.

        Parameters
        ----------
        items : sequence of (label, color, kind)
            ``kind`` is ``line``, ``dash``, ``band`` or ``dot``.
        """
        x = self.m[3]
        for label, color, kind in items:
            y = 34
            if kind == "band":
                self.parts.append(f'<rect x="{x}" y="{y - 8}" width="14" height="9" fill="{color}" fill-opacity="0.35"/>')
            elif kind == "dot":
                self.parts.append(f'<circle cx="{x + 7}" cy="{y - 4}" r="4.5" fill="{color}"/>')
            else:
                d = ' stroke-dasharray="4 3"' if kind == "dash" else ""
                self.parts.append(f'<line x1="{x}" x2="{x + 14}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="2"{d}/>')
            self.parts.append(f'<text x="{x + 18}" y="{y}">{html.escape(label)}</text>')
            x += 26 + 6.4 * len(label)

    def render(self, css_class: str = "") -> str:
        """The ``<svg>`` element (classes ``funnel-svg`` and ``css_class``)."""
        return (f'<svg class="funnel-svg {css_class}" viewBox="0 0 {self.w} {self.h}" preserveAspectRatio="xMidYMid meet" '
                f'xmlns="http://www.w3.org/2000/svg" role="img">' + "".join(self.parts) + "</svg>")



class SvgCharts:
    """The two charts as SVG strings in HTML widgets (the first release's path)."""

    def __init__(self) -> None:
        import ipywidgets as W
        self.curve, self.fan = W.HTML(), W.HTML()

    @property
    def widgets(self) -> tuple:
        return self.curve, self.fan

    def show(self, a: Answer) -> None:
        if a.error is not None or a.plan is None:
            self.curve.value = self.fan.value = ""
            return
        self.curve.value = self._curve(a)
        self.fan.value = self._fan(a) if a.fan is not None else ""

    def _curve(self, a: Answer) -> str:
        plan, q, c = a.plan, a.question, a.curve
        xmax = float(a.domain)
        svg = SvgPlot((0, xmax), (0, 1), title="P(hit the target) against new leads per month",
                      xlabel="new leads per month", ylabel="P(hit)", yfmt=lambda v: f"{v:.0%}")
        svg.axes(nice_ticks(0, xmax, 6), np.linspace(0, 1, 6))
        svg.hline(q.confidence, "#b45309", f"confidence {q.confidence:.0%}")
        items = [("P(hit)", "#1d4ed8", "line")]
        if plan.naive_leads is not None and plan.naive_leads <= xmax:
            svg.vline(plan.naive_leads, "#9aa5b1")
            items.append(("naive plan", "#9aa5b1", "dash"))
        if plan.feasible and plan.leads is not None:
            svg.vline(plan.leads, "#1f7a4d")
            items.append(("leads needed", "#1f7a4d", "dash"))
        svg.line(c["leads"].to_numpy(float), c["probability"].to_numpy(float), "#1d4ed8", 2.5)
        svg.dot(min(q.leads, xmax), a.p_hit, "#b42318")
        items.append(("planned leads", "#b42318", "dot"))
        svg.legend(items)
        return svg.render("curve")

    def _fan(self, a: Answer) -> str:
        s, q = fan_series(a.fan), a.question
        x = s["month"]
        ymax = max(float(s["hi_95"].max()), q.target) * 1.08 or 1.0
        svg = SvgPlot((0, max(1.0, x[-1])), (0, ymax), title="Cumulative wins: forecast with the planned leads",
                      xlabel="months after the cut-off", ylabel="cumulative wins")
        svg.axes(nice_ticks(0, max(1.0, x[-1]), min(len(x) - 1, 8)), nice_ticks(0, ymax, 5), xfmt=lambda v: f"{v:g}")
        for tag, op in (("95", 0.15), ("80", 0.25), ("50", 0.35)):
            svg.band(x, s[f"lo_{tag}"], s[f"hi_{tag}"], "#1d4ed8", op)
        svg.line(x, s["mean"], "#1e3a8a", 2.5)
        svg.hline(q.target, "#b42318", f"target {fmt_number(q.target)}")
        svg.legend([("mean", "#1e3a8a", "line"), ("50/80/95% intervals", "#1d4ed8", "band"), ("target", "#b42318", "dash")])
        return svg.render("fan")

    def sync(self) -> None:
        """HTML widgets carry their whole state: nothing to sync."""

    def figures(self) -> list:
        return []
