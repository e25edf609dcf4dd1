"""Where to act: bottlenecks, stalls, pipeline coverage and gaps to benchmarks.

All quantities are exact expectations per posterior draw (the expected state vector is
propagated through each draw's transition matrix), so the intervals show parameter
uncertainty only, with no Monte Carlo noise.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> stall_ranking(post)["stage"].iloc[0] in post.stages
True
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..posterior import PosteriorFunnel, interval
from .core import (LeadsLike, PipelineLike, SeedLike, check_horizon, check_levels, expected_chain,
                   new_leads_vector, pipeline_counts, set_conversion, set_expected_stall, win_by_months)

__all__ = ["leverage", "stall_ranking", "pipeline_coverage", "benchmark_gaps"]


def _names(post: PosteriorFunnel) -> list[str]:
    return list(post.names) if post.names else list(post.stages)


def _mean_wins(P: np.ndarray, entry: np.ndarray, x0: np.ndarray, leads: np.ndarray, H: int, K: int) -> np.ndarray:
    ent, _ = expected_chain(P, entry, x0, leads, H)
    return ent[..., K].mean(axis=1)


def leverage(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    new_leads: LeadsLike,
    horizon: int = 6,
    *,
    improvement: float = 0.10,
    stall_reduction_months: float = 1.0,
    seed: SeedLike = 0,
    level: float = 0.8,
) -> pd.DataFrame:
    """Extra wins per month from improving each stage, ranked: where to focus.

    For every open stage two levers are evaluated: conversion ``x (1 + improvement)``
    (:meth:`PosteriorFunnel.adjust`) and ``stall_reduction_months`` fewer expected months
    in the stage (per draw, expected stall ``E -> max(1, E - r)``, i.e. the stall
    multiplier ``(E - r) / E``). The effect is the mean over months 1..horizon of the
    exact expected wins (pipeline + new leads) with the lever minus without.

    Parameters
    ----------
    post, pipeline, new_leads, horizon
        As in :func:`forecast`.
    improvement : float
        Relative conversion improvement (0.10 = +10%).
    stall_reduction_months : float
        Months removed from the expected stall.
    seed : int
        Not used: the results are exact expectations (kept for a uniform signature).
    level : float
        Central interval level.

    Returns
    -------
    DataFrame
        ``rank, stage, name, lever, extra_wins_mean, extra_wins_lo, extra_wins_hi,
        p_positive, focus``, sorted by ``extra_wins_mean`` (descending); ``focus`` is
        ``"focus here"`` on the top row.
    """
    del seed
    H = check_horizon(horizon)
    (lv,) = check_levels(level)
    if not np.isfinite(improvement) or improvement <= -1:
        raise SimulationError(f"improvement must be > -1 (0.10 = +10%), got {improvement!r}")
    if not np.isfinite(stall_reduction_months) or stall_reduction_months < 0:
        raise SimulationError(f"stall_reduction_months must be >= 0, got {stall_reduction_months!r}")
    x0 = pipeline_counts(post, pipeline, integer=False)
    leads = new_leads_vector(new_leads, H)
    K = post.n_stages
    base = _mean_wins(post.P, post.entry, x0, leads, H, K)
    stall = post.expected_stall()
    rows = []
    names = _names(post)
    for k, code in enumerate(post.stages):
        P_conv = post.adjust(conversion={code: 1.0 + improvement}).P
        P_stall = set_expected_stall(post.P, k, stall[:, k] - stall_reduction_months)
        for lever, P in ((f"conversion +{100 * improvement:g}%", P_conv),
                         (f"stall -{stall_reduction_months:g} month(s)", P_stall)):
            extra = _mean_wins(P, post.entry, x0, leads, H, K) - base
            lo, hi = interval(extra, lv)
            rows.append({"stage": code, "name": names[k], "lever": lever, "extra_wins_mean": float(extra.mean()),
                         "extra_wins_lo": float(lo), "extra_wins_hi": float(hi),
                         "p_positive": float(np.mean(extra > 0))})
    out = pd.DataFrame(rows).sort_values("extra_wins_mean", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["focus"] = np.where(out["rank"] == 1, "focus here", "")
    return out


def stall_ranking(post: PosteriorFunnel, *, level: float = 0.8) -> pd.DataFrame:
    """Months prospects stall in each stage, ranked from the longest.

    Returns
    -------
    DataFrame
        ``rank, stage, name, expected_months_mean/lo/hi, median_months_mean/lo/hi,
        share`` (share of the summed expected stall over stages).
    """
    (lv,) = check_levels(level)
    e = post.expected_stall()
    med = post.median_stall()
    e_lo, e_hi = interval(e, lv)
    m_lo, m_hi = interval(med, lv)
    out = pd.DataFrame({"stage": list(post.stages), "name": _names(post),
                        "expected_months_mean": e.mean(0), "expected_months_lo": e_lo, "expected_months_hi": e_hi,
                        "median_months_mean": med.mean(0), "median_months_lo": m_lo, "median_months_hi": m_hi})
    out["share"] = out["expected_months_mean"] / out["expected_months_mean"].sum()
    out = out.sort_values("expected_months_mean", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def pipeline_coverage(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    targets_per_month: float | Sequence[float],
    months: int,
    *,
    level: float = 0.8,
) -> pd.DataFrame:
    """How much of the win target the open pipeline covers in the next ``months`` months.

    Parameters
    ----------
    post, pipeline
        As in :func:`forecast`.
    targets_per_month : float or sequence of float
        Win target per month (one number, or one per month).
    months : int
        Months ahead (1..months after the cut-off month).

    Returns
    -------
    DataFrame
        One row per open stage and a ``TOTAL`` row: ``stage, open, win_prob_mean``
        (P(won within the months) for one deal), ``expected_wins_mean/lo/hi``,
        ``coverage`` (expected wins / total target) and ``open_per_target`` (open deals
        per targeted win, the classic spreadsheet ratio).
    """
    M = check_horizon(months, "months")
    (lv,) = check_levels(level)
    tgt = new_leads_vector(targets_per_month, M, name="targets_per_month")
    total_target = float(tgt.sum())
    if total_target <= 0:
        raise SimulationError("targets_per_month must be positive in at least one month to compute coverage")
    x0 = pipeline_counts(post, pipeline)
    K = post.n_stages
    onehot = np.eye(K + 2)[None, :K, :].repeat(post.n_draws, axis=0)
    win = win_by_months(post.P, onehot, M)[:, :, M]         # (D, K)
    exp = win * x0[None, :K]
    all_exp = np.column_stack([exp, exp.sum(1)])
    lo, hi = interval(all_exp, lv)
    opens = np.append(x0[:K], x0[:K].sum())
    win_prob = np.append(win.mean(0), np.nan)
    out = pd.DataFrame({"stage": list(post.stages) + ["TOTAL"], "open": opens.astype(np.int64),
                        "win_prob_mean": win_prob, "expected_wins_mean": all_exp.mean(0),
                        "expected_wins_lo": lo, "expected_wins_hi": hi})
    out["coverage"] = out["expected_wins_mean"] / total_target
    out["open_per_target"] = out["open"] / total_target
    return out


def benchmark_gaps(
    post: PosteriorFunnel,
    benchmarks: Mapping[str, float],
    new_leads: float,
    *,
    level: float = 0.8,
) -> pd.DataFrame:
    """Stage conversion against benchmarks, and what closing the gap is worth.

    Parameters
    ----------
    post : PosteriorFunnel
    benchmarks : mapping stage -> conversion
        Benchmark stage conversion (as :meth:`PosteriorFunnel.conversion`: the share
        of prospects in the stage who move on rather than being lost).
    new_leads : float
        New leads per month (constant).

    Returns
    -------
    DataFrame
        ``stage, benchmark, conversion_mean/lo/hi, p_below, gap_mean/lo/hi`` (benchmark
        minus conversion) and ``wins_gap_mean/lo/hi``: the long-run wins per month
        from ``new_leads`` if the stage converted at least at the benchmark
        (``max(conversion, benchmark)`` per draw) minus the wins per month now
        (steady state: ``new_leads x lead win rate``).
    """
    (lv,) = check_levels(level)
    if not isinstance(benchmarks, Mapping) or not benchmarks:
        raise SimulationError("benchmarks must be a non-empty mapping stage code -> conversion, e.g. {'DEMO': 0.7}")
    L = float(new_leads)
    if not np.isfinite(L) or L < 0:
        raise SimulationError(f"new_leads must be a finite number >= 0, got {new_leads!r}")
    conv = post.conversion()
    base = post.lead_win_rate() * L
    rows = []
    for code, b in benchmarks.items():
        k = post.stage_index(code)
        if not (np.isfinite(b) and 0.0 <= b <= 1.0):
            raise SimulationError(f"benchmark for {code!r} must be a conversion between 0 and 1, got {b!r}")
        c = conv[:, k]
        gap = b - c
        P_b = set_conversion(post.P, k, np.maximum(c, b))
        wins = replace(post, P=P_b).lead_win_rate() * L - base
        g_lo, g_hi = interval(gap, lv)
        c_lo, c_hi = interval(c, lv)
        w_lo, w_hi = interval(wins, lv)
        rows.append({"stage": code, "benchmark": float(b), "conversion_mean": float(c.mean()),
                     "conversion_lo": float(c_lo), "conversion_hi": float(c_hi),
                     "p_below": float(np.mean(c < b)), "gap_mean": float(gap.mean()),
                     "gap_lo": float(g_lo), "gap_hi": float(g_hi), "wins_gap_mean": float(wins.mean()),
                     "wins_gap_lo": float(w_lo), "wins_gap_hi": float(w_hi)})
    return pd.DataFrame(rows)
