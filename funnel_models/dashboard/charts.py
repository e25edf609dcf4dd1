"""Hand-written SVG charts of the what-if dashboard.

The dashboard draws its two charts as inline SVG strings (no plotting library, so a
control change re-renders in well under a millisecond and the HTML works in static
exports). This module holds the drawing code; :mod:`funnel_models.dashboard` decides
what to draw and caches the inputs.

* :class:`SvgPlot` -- a minimal SVG plot (axes, grid, bands, lines, markers, legend)
  that scales with its container.
* :func:`p_hit_curve_svg` -- P(hit the target) against new leads per month.
* :func:`forecast_fan_svg` -- cumulative wins / revenue with 50/80/95% bands.
* :func:`nice_ticks`, :func:`fmt_number` -- axis ticks and compact number labels.

Examples
--------
>>> fmt_number(12_345)
'12.3k'
>>> nice_ticks(0, 10, 5).tolist()
[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
>>> svg = SvgPlot((0, 1), (0, 1), title="demo")
>>> svg.line([0, 1], [0, 1], "#000")
>>> svg.render().startswith('<svg class="funnel-svg ')
True
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..simulate.planning import LeadsNeededResult

__all__ = ["FAN_LEVELS", "SvgPlot", "fmt_number", "nice_ticks", "p_hit_curve_svg", "forecast_fan_svg"]

#: Interval levels drawn as bands in the forecast fan chart (innermost first).
FAN_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """Round tick positions (steps of 1, 2, 2.5 or 5 times a power of ten) covering ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : float
        Axis range. A non-finite or empty range is replaced by ``[lo, lo + 1]``.
    n : int
        Approximate number of intervals; the step is the smallest nice one at least
        ``(hi - lo) / n``.

    Returns
    -------
    ndarray
        Ticks from the first multiple of the step at or above ``lo`` up to ``hi``.
    """
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-9, step)


def fmt_number(v: float | None, decimals: int = 0) -> str:
    """Compact label for a number: ``1.23M``, ``45.6k`` or ``1,234`` (``–`` if missing).

    Parameters
    ----------
    v : float or None
        The value; ``None``, NaN and infinities give an en dash.
    decimals : int
        Decimals below 10,000 (larger values use 3 significant digits and a suffix).

    Returns
    -------
    str
    """
    if v is None or not np.isfinite(v):
        return "–"
    av = abs(v)
    if av >= 1e6:
        return f"{v / 1e6:.3g}M"
    if av >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:,.{decimals}f}"


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


def p_hit_curve_svg(plan: LeadsNeededResult, leads: float, p_hit: float, confidence: float) -> str:
    """Chart of P(hit the target) against new leads per month.

    Parameters
    ----------
    plan : LeadsNeededResult
        From ``simulate.leads_needed``; draws ``plan.curve`` (columns ``leads`` and
        ``probability``), the leads needed (if feasible) and the naive plan.
    leads : float
        Planned new leads per month, marked with a dot at ``p_hit``.
    p_hit : float
        P(hit) with ``leads``.
    confidence : float
        Required probability, drawn as a horizontal line.

    Returns
    -------
    str
        An ``<svg>`` element (CSS class ``curve``).
    """
    c = plan.curve
    xs = c["leads"].to_numpy(float)
    ys = c["probability"].to_numpy(float)
    marks = [leads, plan.leads or 0, plan.naive_leads or 0]
    xmax = max(float(xs.max()) if xs.size else 1.0, *marks, 1.0) * 1.04
    svg = SvgPlot((0, xmax), (0, 1), title="P(hit the target) against new leads per month",
                  xlabel="new leads per month", ylabel="P(hit)", yfmt=lambda v: f"{v:.0%}")
    svg.axes(nice_ticks(0, xmax, 6), np.linspace(0, 1, 6))
    svg.hline(confidence, "#b45309", f"confidence {confidence:.0%}")
    items = [("P(hit)", "#1d4ed8", "line")]
    if plan.naive_leads is not None and plan.naive_leads <= xmax:
        svg.vline(plan.naive_leads, "#9aa5b1")
        items.append(("naive plan", "#9aa5b1", "dash"))
    if plan.feasible and plan.leads is not None:
        svg.vline(plan.leads, "#1f7a4d")
        items.append(("leads needed", "#1f7a4d", "dash"))
    svg.line(xs, ys, "#1d4ed8", 2.5)
    svg.dot(leads, p_hit, "#b42318")
    items.append(("planned leads", "#b42318", "dot"))
    svg.legend(items)
    return svg.render("curve")


def forecast_fan_svg(iv: pd.DataFrame, horizon: int, target: float, *, revenue: bool = False) -> str:
    """Fan chart of cumulative wins (or revenue) with the target line.

    Parameters
    ----------
    iv : DataFrame
        ``simulate.intervals`` of the cumulative series at :data:`FAN_LEVELS`: one row
        per month 1..``horizon`` with columns ``mean``, ``lo_50``/``hi_50``,
        ``lo_80``/``hi_80`` and ``lo_95``/``hi_95``.
    horizon : int
        Number of forecast months (the chart starts at 0 at month 0).
    target : float
        Target, drawn as a horizontal line.
    revenue : bool
        Label the series as revenue instead of wins.

    Returns
    -------
    str
        An ``<svg>`` element (CSS class ``fan``).
    """
    months = np.arange(1, horizon + 1, dtype=float)
    x = np.concatenate([[0.0], months])
    hi_all = float(iv["hi_95"].max())
    ymax = max(hi_all, target) * 1.08 or 1.0
    svg = SvgPlot((0, max(1.0, months[-1])), (0, ymax),
                  title=f"Cumulative {'revenue' if revenue else 'wins'}: forecast with the planned leads",
                  xlabel="months after the cut-off", ylabel=f"cumulative {'revenue' if revenue else 'wins'}")
    svg.axes(nice_ticks(0, max(1.0, months[-1]), min(horizon, 8)), nice_ticks(0, ymax, 5),
             xfmt=lambda v: f"{v:g}")
    for lv, op in zip(FAN_LEVELS[::-1], (0.15, 0.25, 0.35)):
        tag = f"{100 * lv:g}"
        svg.band(x, np.r_[0.0, iv[f"lo_{tag}"]], np.r_[0.0, iv[f"hi_{tag}"]], "#1d4ed8", op)
    svg.line(x, np.r_[0.0, iv["mean"]], "#1e3a8a", 2.5)
    svg.hline(target, "#b42318", f"target {fmt_number(target)}")
    svg.legend([("mean", "#1e3a8a", "line"), ("50/80/95% intervals", "#1d4ed8", "band"),
                ("target", "#b42318", "dash")])
    return svg.render("fan")
