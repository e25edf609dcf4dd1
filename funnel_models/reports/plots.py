"""Matplotlib figures of the reports: every axis labelled, a title, readable at laptop width.

Figures are created with :class:`matplotlib.figure.Figure` (no pyplot state), 10 inches
wide at 100 dpi (1000 px), with 11-12 pt text. Each function takes the tables built in
:mod:`funnel_models.reports.analysis` and returns the figure.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..charts.headline import lever_kind

__all__ = ["funnel_chart", "pipeline_chart", "conversion_chart", "stall_chart", "segment_chart", "warning_chart",
           "inflow_chart", "forecast_fan", "leads_curve", "bottleneck_chart", "plan_chart", "change_chart",
           "change_history_chart", "calibration_chart", "backtest_forecasts_chart", "WIDTH"]

WIDTH = 10.0
BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"


def _fig(height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.title.set_fontsize(13)
    ax.title.set_fontweight("bold")
    ax.xaxis.label.set_fontsize(11)
    ax.yaxis.label.set_fontsize(11)
    ax.grid(axis="x", alpha=0.3)
    return fig, ax


def _rows_fig(n: int, row_height: float, extra: float) -> tuple[Figure, Any, np.ndarray]:
    """A figure with one horizontal row per item, ``row_height`` inches each plus ``extra``,
    and the rows' y positions (the first item on top)."""
    fig, ax = _fig(row_height * n + extra)
    return fig, ax, np.arange(n)[::-1]


def _err(m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Error-bar lengths below and above ``m`` (never negative: a skewed posterior's mean can
    lie outside its central interval)."""
    m, lo, hi = (np.asarray(a, float) for a in (m, lo, hi))
    return [np.clip(m - lo, 0, None), np.clip(hi - m, 0, None)]


def _legend_below(fig: Figure, ax: Any, ncol: int = 3) -> None:
    """Legend under the axes, so it never hides data."""
    h, lab = ax.get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=ncol, frameon=False)


def _fmt_change(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "new"
    return f"{'+' if x > 0 else ''}{int(x):,}"


def funnel_chart(table: pd.DataFrame, month: str, entries: bool = False) -> Figure:
    """Horizontal bars: leads per stage this month with the change since last month
    (``entries``: the data are monthly entries into each stage, not month-end counts)."""
    fig, ax, y = _rows_fig(len(table), 0.55, 1.4)
    labels = [f"{s} – {n}" if n != s else s for s, n in zip(table["stage"], table["name"])]
    colors = [BLUE] * (len(table) - 2) + [GREEN, GREY]
    vals = table["leads"].to_numpy(float)
    ax.barh(y, vals, color=colors[:len(table)], height=0.65)
    top = float(vals.max()) if len(vals) else 1.0
    for yi, v, ch in zip(y, vals, table["change vs last month"]):
        ax.text(v + top * 0.01, yi, f"{int(v):,}  ({_fmt_change(ch)} vs last month)", va="center", fontsize=10)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, max(top, 1) * 1.45)
    ax.set_xlabel("leads entering each stage during the month" if entries else
                  "leads (open stages: at month end; WON / LOST: closed during the month)")
    ax.set_title(f"Funnel at the end of {month}")
    return fig


def conversion_chart(st: pd.DataFrame, benchmarks: Mapping[str, float], level: float) -> Figure:
    """Stage conversion (posterior mean and interval) with benchmark markers."""
    fig, ax, y = _rows_fig(len(st), 0.5, 1.6)
    m = st["conversion_mean"].to_numpy(float)
    lo, hi = st["conversion_lo"].to_numpy(float), st["conversion_hi"].to_numpy(float)
    ok = np.isfinite(m)
    bx = [benchmarks.get(s, np.nan) for s in st["stage"]]
    xr = _share_range(np.r_[lo[ok], hi[ok], bx])
    ax.errorbar(m[ok], y[ok], xerr=_err(m[ok], lo[ok], hi[ok]), fmt="o", color=BLUE, capsize=4, ms=7,
                label=f"model estimate ({level:.0%} interval)")
    for yi, v in zip(y, m):
        ax.text(v if np.isfinite(v) else sum(xr) / 2, yi + 0.22, f"{100 * v:.0f}%" if np.isfinite(v) else "no data",
                ha="center", fontsize=9, color=BLUE if np.isfinite(v) else GREY)
    if any(np.isfinite(bx)):
        ax.scatter(bx, y, marker="D", color=RED, s=45, zorder=3, label="benchmark")
    names = st["name"] if "name" in st else st["stage"]
    ax.set_yticks(y, [f"{s} – {n}" for s, n in zip(st["stage"], names)])
    ax.set_ylim(-0.7, len(st) - 0.3)
    ax.set_xlim(*xr)
    digits = 1 if xr[1] - xr[0] < 0.25 else 0
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.{digits}f}%")
    ax.set_xlabel("stage conversion: share of prospects leaving the stage who move on (not lost)")
    ax.set_title("Stage conversion vs benchmarks")
    _legend_below(fig, ax)
    return fig


def _share_range(values: np.ndarray) -> tuple[float, float]:
    """An axis range for shares that follows the data (padded, within 0-1) instead of 0-100%."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = max(0.05, 0.12 * (hi - lo))
    return max(0.0, lo - pad), min(1.0, hi + pad)


def stall_chart(sr: pd.DataFrame, level: float) -> Figure:
    """Expected months in each stage, ranked."""
    fig, ax, y = _rows_fig(len(sr), 0.5, 1.4)
    m = sr["expected_months_mean"].to_numpy()
    ax.barh(y, m, color=ORANGE, height=0.6,
            xerr=_err(m, sr["expected_months_lo"], sr["expected_months_hi"]),
            capsize=4, label=f"expected months ({level:.0%} interval)")
    his = sr["expected_months_hi"].to_numpy()
    for yi, v, h in zip(y, m, his):
        ax.text(h + 0.03, yi, f"{v:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, float(his.max()) * 1.12)
    ax.set_yticks(y, [f"{s} – {n}" for s, n in zip(sr["stage"], sr["name"])])
    ax.set_xlabel("expected months a prospect stays in the stage (incl. the month it arrives)")
    ax.set_title("Stall time per stage (longest first)")
    _legend_below(fig, ax)
    return fig


def segment_chart(seg: pd.DataFrame, overall: float, level: float) -> Figure:
    """Lead win rate per segment: model estimate with interval beside the raw rate."""
    fig, ax, y = _rows_fig(len(seg), 0.42, 1.8)
    m = seg["model"].to_numpy()
    ax.errorbar(m, y, xerr=_err(m, seg["lo"], seg["hi"]), fmt="o", color=BLUE,
                capsize=4, ms=7, label=f"model estimate ({level:.0%} interval)")
    ax.scatter(seg["raw"], y, marker="x", color=RED, s=60, zorder=3, label="raw share won so far (no model)")
    ax.axvline(overall, color=GREY, ls="--", lw=1, label=f"all segments {100 * overall:.1f}%")
    ax.set_yticks(y, [f"{f}={lvl}  (n={n:,})" for f, lvl, n in zip(seg["factor"], seg["segment"], seg["leads"])])
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.1f}%")
    ax.set_xlabel("lead win rate: share of new leads eventually won")
    ax.set_title("Segments: model estimate vs raw rate")
    _legend_below(fig, ax)
    return fig


def warning_chart(st: pd.DataFrame, level: float, month: str) -> Figure:
    """Observed counts this month against the predictive interval, per stage."""
    fig, ax, y = _rows_fig(len(st), 0.45, 1.5)
    lo, hi = st["lo"].to_numpy(float), st["hi"].to_numpy(float)
    ax.hlines(y, lo, hi, color=GREY, lw=6, alpha=0.5, label=f"expected range ({level:.0%})")
    ax.scatter(st["expected"], y, color=GREY, marker="|", s=200, label="expected")
    obs = st["observed"].to_numpy(float)
    col = [RED if f else GREEN for f in st["flag"]]
    ax.scatter(obs, y, color=col, s=50, zorder=3, label="observed (red = outside range)")
    ax.set_yticks(y, list(st["stage"]))
    ax.set_xlabel(f"leads in {month} (open stages: at month end; WON / LOST: closed in the month)")
    ax.set_title("Early warning: this month vs the model's expectation")
    _legend_below(fig, ax, ncol=3)
    return fig


def forecast_fan(w: pd.DataFrame, history: pd.DataFrame | None = None) -> Figure:
    """Fan chart of wins per month: 50/80/95% bands, mean, and the last months' actual wins."""
    fig, ax = _fig(4.6)
    ax.grid(axis="y", alpha=0.3)
    x = pd.to_datetime(w["month"])
    for lv, alpha in (("95", 0.15), ("80", 0.25), ("50", 0.35)):
        ax.fill_between(x, w[f"lo_{lv}"], w[f"hi_{lv}"], color=BLUE, alpha=alpha, lw=0, label=f"{lv}% interval")
    ax.plot(x, w["mean"], "o-", color=BLUE, label="expected wins")
    for xi, v in zip(x, w["mean"]):
        ax.annotate(f"{v:.1f}", (xi, v), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=9)
    if history is not None and len(history):
        ax.plot(pd.to_datetime(history["month"]), history["count"], "s-", color=GREY, label="actual wins")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("month")
    ax.set_ylabel("deals won per month")
    ax.set_title("Forecast of wins per month")
    _legend_below(fig, ax, ncol=5)
    return fig


def leads_curve(res: Any, today: tuple[float, float] | None = None) -> Figure:
    """P(hit the target) against new leads per month, with the model and naive answers and
    (``today``: leads per month, P(hit)) today's volume marked on the curve."""
    fig, ax = _fig(4.4)
    ax.grid(alpha=0.3)
    c = res.curve
    ax.plot(c["leads"], c["probability"], "-", color=BLUE, lw=2, label="P(hit target) with this many leads")
    if today is not None:
        ax.axvline(today[0], color=GREY, ls=":", lw=1.5)
        ax.plot([today[0]], [today[1]], "o", color="black", ms=8, zorder=4,
                label=f"today: {today[0]:,.0f} leads/month (P={today[1]:.2f})")
    ax.axhline(res.confidence, color=GREY, ls=":", label=f"required confidence {res.confidence:.0%}")
    if res.leads is not None:
        ax.axvline(res.leads, color=GREEN, ls="--", label=f"model answer: {res.leads:,} leads/month "
                   f"(P={res.probability:.2f})")
    if res.naive_leads is not None:
        ax.axvline(res.naive_leads, color=RED, ls="--", label=f"naive answer: {res.naive_leads:,} leads/month "
                   f"(P={res.naive_probability:.2f})")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("new leads per month")
    ax.set_ylabel("probability of hitting the target")
    T = res.window[1]
    ax.set_title(f"Leads needed for {res.target:g} wins in the next {T} month(s)")
    _legend_below(fig, ax, ncol=2)
    return fig


def bottleneck_chart(lev: pd.DataFrame, level: float) -> Figure:
    """Extra wins per month from each lever, ranked; the top one marked 'focus here'."""
    fig, ax, y = _rows_fig(len(lev), 0.45, 1.5)
    m = lev["extra_wins_mean"].to_numpy()
    colors = [GREEN if f else BLUE for f in lev["focus"]]
    ax.barh(y, m, color=colors, height=0.6, xerr=_err(m, lev["extra_wins_lo"], lev["extra_wins_hi"]), capsize=3)
    for yi, v, f in zip(y, m, lev["focus"]):
        ax.text(max(v, 0) * 1.02 + 0.02, yi - 0.3, f"{v:.2f}" + ("  ← focus here" if f else ""), fontsize=9)
    ax.set_yticks(y, [f"{s}: {lv} ({lever_kind(lv)})" for s, lv in zip(lev["stage"], lev["lever"])])
    ax.set_xlim(0, max(float(lev["extra_wins_hi"].max()), 1e-6) * 1.35)
    ax.set_xlabel(f"extra wins per month if the lever is pulled ({level:.0%} interval)")
    ax.set_title("Bottleneck ranking: where an improvement adds most wins")
    return fig


def plan_chart(table: pd.DataFrame, x: str, title: str) -> Figure:
    """Grouped bars: model vs naive leads per month, per period or segment."""
    fig, ax = _fig(4.2)
    ax.grid(axis="y", alpha=0.3)
    ax.grid(axis="x", visible=False)
    idx = np.arange(len(table))
    model = pd.to_numeric(table["leads per month"], errors="coerce").fillna(0).to_numpy()
    naive = pd.to_numeric(table["naive leads per month"], errors="coerce").fillna(0).to_numpy()
    b1 = ax.bar(idx - 0.2, model, 0.4, color=BLUE, label="model (meets the confidence)")
    b2 = ax.bar(idx + 0.2, naive, 0.4, color=RED, alpha=0.7, label="naive (target / win rate)")
    ax.bar_label(b1, fmt="%.0f", fontsize=9)
    ax.bar_label(b2, fmt="%.0f", fontsize=9)
    ax.set_xticks(idx, [str(v) for v in table[x]])
    ax.set_xlabel(x)
    ax.set_ylabel("new leads per month")
    ax.set_title(title)
    _legend_below(fig, ax, ncol=2)
    return fig


def change_chart(before: np.ndarray, after: np.ndarray, stage: str, level: float) -> Figure:
    """Posterior of the stage conversion before and after the change."""
    fig, ax = _fig(4.0)
    ax.grid(alpha=0.3)
    lo = float(min(before.min(), after.min()))
    hi = float(max(before.max(), after.max()))
    bins = np.linspace(lo, hi, 50)
    ax.hist(before, bins=bins, color=GREY, alpha=0.6, density=True, label=f"before (mean {100 * before.mean():.1f}%)")
    ax.hist(after, bins=bins, color=GREEN, alpha=0.6, density=True, label=f"after (mean {100 * after.mean():.1f}%)")
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel(f"conversion at {stage} (share moving on rather than lost)")
    ax.set_ylabel("posterior density")
    ax.set_title(f"Conversion at {stage} before vs after the change")
    _legend_below(fig, ax, ncol=2)
    return fig


def change_history_chart(monthly: pd.DataFrame, change_month: pd.Timestamp, stage: str) -> Figure:
    """Raw monthly conversion at a stage, with the change month marked."""
    fig, ax = _fig(4.0)
    ax.grid(alpha=0.3)
    ax.plot(monthly["month"], monthly["conversion"], "o-", color=BLUE, ms=4, label="raw monthly conversion")
    ax.axvline(change_month, color=RED, ls="--", label=f"change ({pd.Timestamp(change_month):%Y-%m})")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("month")
    ax.set_ylabel(f"conversion at {stage}")
    ax.set_title(f"Monthly conversion at {stage}")
    _legend_below(fig, ax, ncol=2)
    return fig


def pipeline_chart(out: pd.DataFrame, new_lead: tuple[float, float, float], level: float) -> Figure:
    """Open leads per stage split into active and cold, labelled with their eventual win rate."""
    rows = out[out["stage"] != "TOTAL"].reset_index(drop=True)
    fig, ax, y = _rows_fig(len(rows), 0.5, 1.8)
    n = rows["open"].to_numpy(float)
    cold = np.nan_to_num(rows["cold"].to_numpy(float))
    ax.barh(y, n - cold, color=BLUE, height=0.6, label="open, still moving")
    if cold.sum() > 0:
        ax.barh(y, cold, left=n - cold, color=GREY, height=0.6, label="open but cold (no move for a long time)")
    top = max(float(n.max()) if len(n) else 0.0, 1.0)
    for yi, v, w in zip(y, n, rows["win_rate_mean"]):
        lab = f"{int(v):,} open" + (f", {100 * w:.1f}% will be won" if np.isfinite(w) else "")
        ax.text(v + top * 0.01, yi, lab, va="center", fontsize=10)
    ax.set_yticks(y, list(rows["stage"]))
    ax.set_xlim(0, top * 1.5)
    ax.set_xlabel("open leads at the cut-off (label: their eventual win rate)")
    ax.set_title(f"Today's open pipeline (a new lead is won with probability {100 * new_lead[0]:.1f}%)")
    if cold.sum() > 0:
        _legend_below(fig, ax, ncol=2)
    return fig


def inflow_chart(observed: pd.Series, history: pd.DataFrame | None, effect: pd.DataFrame, level: float) -> Figure:
    """Left: new leads per month (with the inflow model's fit); right: the effect of this
    month's inflow on the wins of each coming month."""
    fig = Figure(figsize=(WIDTH, 4.2), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    obs = observed.tail(24)
    ax1.bar(obs.index, obs.to_numpy(float), width=20, color=BLUE, alpha=0.8, label="new leads (actual)")
    if history is not None:
        h = history[history["month"] >= obs.index.min()]
        ax1.fill_between(h["month"], h["lo"], h["hi"], color=ORANGE, alpha=0.25, lw=0,
                         label=f"inflow model ({level:.0%} interval of the mean)")
        ax1.plot(h["month"], h["mean"], color=ORANGE, lw=2, label="inflow model (mean)")
    ax1.set_ylim(bottom=0)
    ax1.set_ylabel("new leads per month")
    ax1.set_title("New leads per month")
    ax1.set_ylim(0, float(obs.max()) * 1.35 if len(obs) else 1.0)
    ax1.legend(fontsize=8, loc="upper left", ncol=2, frameon=False)
    ax1.tick_params(axis="x", labelrotation=45, labelsize=8)
    x = np.arange(len(effect))
    d = effect["difference_mean"].to_numpy(float)
    ax2.bar(x, d, color=[RED if v < 0 else GREEN for v in d],
            yerr=_err(d, effect["difference_lo"], effect["difference_hi"]), capsize=3)
    ax2.axhline(0, color=GREY, lw=1)
    ax2.set_xticks(x, [pd.Timestamp(m).strftime("%Y-%m") for m in effect["month"]], rotation=45, fontsize=8)
    ax2.set_ylabel("wins: actual minus expected inflow")
    ax2.set_title("Effect of this month's new leads")
    for ax in (ax1, ax2):
        ax.title.set_fontsize(12)
        ax.title.set_fontweight("bold")
        ax.grid(axis="y", alpha=0.3)
    return fig


def calibration_chart(res: Any) -> Figure:
    """Nominal vs empirical coverage of a backtest's Bayesian intervals, one panel per mode."""
    modes = list(res.modes)
    fig = Figure(figsize=(min(WIDTH, 5.0 * len(modes)), 4.8), dpi=100, layout="constrained")
    for ax, mode in zip(np.atleast_1d(fig.subplots(1, len(modes))), modes):
        res.plot_calibration(ax=ax, mode=mode)
        ax.set_title(f"{ax.get_title()}\n{mode} forecasts", fontsize=10)
    return fig


def backtest_forecasts_chart(res: Any, mode: str) -> Figure:
    """Actuals against every model's h-months-ahead forecasts of one mode, one panel per h."""
    H = int(res.horizon)
    fig = Figure(figsize=(WIDTH, 4.2 * H), dpi=100, layout="constrained")
    for h, ax in enumerate(np.atleast_1d(fig.subplots(H, 1)), start=1):
        res.plot_forecasts(h=h, ax=ax, mode=mode)
    return fig
