"""Matplotlib charts of a :class:`~funnel_models.events.result.FunnelResult`.

Every function draws on ``ax`` (a new figure when ``None``) and returns the Axes, with
labelled axes and a title.

The breakdown chart shows raw conversion rates beside pooled rates. The default pooled
estimate is an empirical-Bayes beta-binomial shrinkage (:func:`eb_shrinkage`): a Beta
prior is fitted to the per-group rates by the method of moments and each group's rate is
its posterior mean ``(k + a) / (n + a + b)``. Pass ``pooled=`` to show another estimate
(for example posterior means from a hierarchical model).
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ..errors import FunnelDataError
from .result import FunnelResult

__all__ = ["plot_funnel", "plot_breakdown", "plot_time_to_convert", "plot_trend",
           "plot_journey", "eb_shrinkage"]


def _ax(ax: Axes | None, size: tuple[float, float] = (8, 4.5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def eb_shrinkage(successes: pd.Series, trials: pd.Series) -> pd.Series:
    """Empirical-Bayes beta-binomial shrinkage of per-group rates.

    Fits ``Beta(a, b)`` to the raw rates ``successes / trials`` by the method of moments
    (trial-weighted mean; between-group variance = observed variance minus the average
    binomial noise) and returns each group's posterior mean ``(k + a) / (n + a + b)``.
    When the rates vary no more than binomial noise, every group gets the pooled mean.

    Parameters
    ----------
    successes, trials : Series
        Counts per group (same index).

    Returns
    -------
    Series
        Shrunk rates, same index.

    Examples
    --------
    >>> eb_shrinkage(pd.Series([1, 50]), pd.Series([2, 100])).round(3).tolist()
    [0.5, 0.5]
    """
    k = pd.Series(successes, dtype="float64")
    n = pd.Series(trials, dtype="float64").reindex(k.index)
    ok = n > 0
    if not ok.any():
        return pd.Series(np.nan, index=k.index)
    m = k[ok].sum() / n[ok].sum()
    if m <= 0 or m >= 1 or ok.sum() < 2:
        return pd.Series(m, index=k.index).where(ok, np.nan)
    raw = k[ok] / n[ok]
    w = n[ok] / n[ok].sum()
    var_obs = float((w * (raw - m) ** 2).sum())
    noise = float((w * m * (1 - m) / n[ok]).sum())
    var_between = var_obs - noise
    if var_between <= 1e-12:
        out = pd.Series(m, index=k.index)
    else:
        s = max(m * (1 - m) / var_between - 1, 1e-6)
        a, b = m * s, (1 - m) * s
        out = (k + a) / (n + a + b)
    return out.where(ok, np.nan)


def plot_funnel(result: FunnelResult, ax: Axes | None = None,
                breakdown_value: Any = None) -> Axes:
    """Bars of users per step with the drop-off stacked on top.

    Parameters
    ----------
    result : FunnelResult
    ax : Axes, optional
    breakdown_value : optional
        Show one breakdown value only (default: all users, unique per step).
    """
    ax = _ax(ax)
    conv = result.conversion
    if result.breakdown is not None:
        if breakdown_value is None:
            conv = conv.groupby("step", sort=False)[["count", "dropped"]].sum().reset_index()
        else:
            conv = conv[conv[result.breakdown] == str(breakdown_value)]
    x = np.arange(len(conv))
    cnt = conv["count"].to_numpy(dtype=float)
    drop = conv["dropped"].to_numpy(dtype=float)
    ax.bar(x, cnt, color="tab:blue", label="converted")
    ax.bar(x, drop, bottom=cnt, color="lightgray", hatch="//", edgecolor="gray", label="dropped")
    first = cnt[0] if len(cnt) and cnt[0] else np.nan
    for xi, c in zip(x, cnt):
        ax.annotate(f"{c:,.0f}\n{c / first:.1%}" if first == first else f"{c:,.0f}",
                    (xi, c), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, conv["step"], rotation=20, ha="right")
    ax.set_xlabel("Step")
    ax.set_ylabel("Users")
    title = f"Funnel ({result.order}, window {result.window})"
    if breakdown_value is not None:
        title += f" - {result.breakdown} = {breakdown_value}"
    ax.set_title(title)
    ax.legend(loc="upper right")
    return ax


def plot_breakdown(result: FunnelResult, step: int | str = -1, pooled: pd.Series | None = None,
                   ax: Axes | None = None) -> Axes:
    """Raw conversion (step 0 to ``step``) per breakdown value beside pooled rates.

    Parameters
    ----------
    result : FunnelResult
        Must have a breakdown.
    step : int or str
        Target step (default last).
    pooled : Series, optional
        Pooled rate per breakdown value; default :func:`eb_shrinkage`.
    ax : Axes, optional
    """
    if result.breakdown is None:
        raise FunnelDataError("plot_breakdown needs a funnel computed with breakdown=...")
    k = result._idx(step)
    counts = result.counts
    n = counts.iloc[:, 0]
    s = counts.iloc[:, k]
    raw = (s / n.where(n > 0)).astype(float)
    pool = eb_shrinkage(s, n) if pooled is None else pd.Series(pooled).reindex(raw.index).astype(float)
    ax = _ax(ax)
    y = np.arange(len(raw))
    h = 0.38
    ax.barh(y - h / 2, raw.to_numpy(), height=h, color="tab:blue", label="raw")
    ax.barh(y + h / 2, pool.to_numpy(), height=h, color="tab:orange",
            label="pooled (empirical Bayes)" if pooled is None else "pooled")
    for yi, (r, nn) in enumerate(zip(raw, n)):
        ax.annotate(f"n={nn:,}", (0, yi - h / 2), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7, color="white")
    overall = s.sum() / n.sum() if n.sum() else np.nan
    ax.axvline(overall, color="gray", ls="--", lw=1, label="overall")
    ax.set_yticks(y, [str(v) for v in raw.index])
    ax.set_xlabel(f"Conversion {result.steps[0]} -> {result.steps[k]}")
    ax.set_ylabel(result.breakdown)
    ax.set_title(f"Conversion by {result.breakdown}: raw vs pooled")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_time_to_convert(result: FunnelResult, to_step: int | str = -1,
                         from_step: int | str = 0, bins: int = 30, log: bool = True,
                         ax: Axes | None = None) -> Axes:
    """Histogram of time to convert (hours) between two steps."""
    h = result.time_to_convert(to_step, from_step, bins=bins, log=log)
    ax = _ax(ax)
    left = h["bin_start"].to_numpy() / 3600
    width = (h["bin_end"] - h["bin_start"]).to_numpy() / 3600
    ax.bar(left, h["users"].to_numpy(), width=width, align="edge", color="tab:green",
           edgecolor="white")
    if log and (left > 0).any():
        ax.set_xscale("symlog", linthresh=max(left[left > 0].min(), 1e-3))
    a, b = result.steps[result._idx(from_step)], result.steps[result._idx(to_step)]
    ax.set_xlabel(f"Hours from {a} to {b}")
    ax.set_ylabel("Users")
    ax.set_title(f"Time to convert: {a} -> {b}")
    return ax


def plot_trend(result: FunnelResult, period: str = "week", to_step: int | str = -1,
               ax: Axes | None = None) -> Axes:
    """Conversion rate by entry period (one line per breakdown value)."""
    tr = result.trend(period, to_step)
    ax = _ax(ax)
    if result.breakdown is None:
        ax.plot(tr["period"], tr["conversion"], marker="o", label="all users")
    else:
        for val, g in tr.groupby(result.breakdown, sort=True):
            ax.plot(g["period"], g["conversion"], marker="o", label=str(val))
    ax.set_xlabel(f"Entry {period}")
    ax.set_ylabel(f"Conversion to {result.steps[result._idx(to_step)]}")
    ax.set_title(f"Conversion trend by entry {period}")
    ax.legend(fontsize=8)
    ax.figure.autofmt_xdate()
    return ax


def plot_journey(result: FunnelResult, user: Any, ax: Axes | None = None) -> Axes:
    """One user's events over time; the events that filled funnel steps are highlighted."""
    ev = result.journey(user)
    if ev.empty:
        raise FunnelDataError(f"user {user!r} has no events in the source; check the id.")
    ax = _ax(ax, (9, 3.5))
    names = list(dict.fromkeys([sd.event for sd in result.step_defs] + sorted(set(ev["event"]))))
    ypos = {e: i for i, e in enumerate(names)}
    t = pd.to_datetime(ev["timestamp"])
    ax.scatter(t, [ypos[e] for e in ev["event"]], color="gray", s=18, label="event")
    row = result.users[result.users["user_id"] == str(user)]
    if len(row):
        r = row.iloc[0]
        pts = [(r[s], result.step_defs[k].event, s) for k, s in enumerate(result.steps)
               if pd.notna(r[s])]
        if pts:
            ax.scatter([p[0] for p in pts], [ypos[p[1]] for p in pts], color="tab:red", s=60,
                       marker="D", label="filled step", zorder=3)
            for tt, e, s in pts:
                ax.annotate(s, (tt, ypos[e]), xytext=(4, 6), textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("Time")
    ax.set_ylabel("Event")
    ax.set_title(f"Journey of user {user}")
    ax.legend(fontsize=8, loc="best")
    ax.figure.autofmt_xdate()
    return ax
