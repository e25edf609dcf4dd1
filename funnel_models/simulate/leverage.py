"""Where to act: bottlenecks, stalls, the open pipeline's outlook, coverage and benchmarks.

All quantities are exact expectations per posterior draw over the average months
(seasonal offsets when ``start`` is given, no month shocks): the intervals show parameter
uncertainty only, with no Monte Carlo noise. The pipeline enters by age.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> stall_ranking(post)["stage"].iloc[0] in post.stages
True
>>> int(pipeline_outlook(post, {"NEGO": 10}, months=3).set_index("stage").loc["TOTAL", "open"])
10
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import chain
from ..errors import SimulationError
from ..intervals import central_interval, check_levels
from ..posterior import PosteriorFunnel, scale_forward, scale_leaving, shift_leaving
from .core import (LeadsLike, PipelineLike, SeedLike, check_horizon, expected_inputs, expected_run, new_leads_vector,
                   pipeline_state, season_months)
from .plansims import window_win_probabilities

__all__ = ["leverage", "stall_ranking", "pipeline_coverage", "pipeline_outlook", "benchmark_gaps",
           "UNLIKELY_FRACTION"]

#: An open lead is a long shot when its chance of ever being won is below this fraction of
#: a new lead's (:func:`pipeline_outlook`).
UNLIKELY_FRACTION = 0.1


def _names(post: PosteriorFunnel) -> list[str]:
    return list(post.names) if post.names else list(post.stages)


def _mean_wins(post: PosteriorFunnel, x0: np.ndarray, leads: np.ndarray, months: np.ndarray) -> np.ndarray:
    ent, _, _ = expected_run(post, x0, leads, months)
    return ent[..., post.n_stages].mean(axis=1)


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
    start: object | None = None,
) -> pd.DataFrame:
    """Extra wins per month from improving each stage, ranked: where to focus.

    For every open stage two levers are evaluated: conversion ``x (1 + improvement)``
    (:meth:`PosteriorFunnel.adjust`) and a stall ``stall_reduction_months`` shorter. With
    time in stage, every lead that leaves the stage does so that many months sooner and who
    leaves is unchanged (:func:`funnel_models.posterior.shift_leaving`); scaling the
    chance of leaving at every age instead would also move leads that were going cold, and
    on a funnel without recorded losses (Olist) "faster" became "many more wins". A
    memoryless stage has one leaving probability ``1 / E``, so there the expected stall goes
    ``E -> max(1, E - r)`` per draw by scaling it by ``E / max(1, E - r)``, which keeps who
    leaves too. The effect is the mean over months 1..horizon of the exact expected wins
    (pipeline + new leads) with the lever minus without.

    Parameters
    ----------
    post, pipeline, new_leads, horizon, start
        As in :func:`forecast` (inflow draws count by their mean).
    improvement : float
        Relative conversion improvement (0.10 = +10%).
    stall_reduction_months : float
        Months removed from the stall (a whole number with time in stage).
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
    _, x0, leads, months = expected_inputs(post, pipeline, new_leads, horizon, start)
    (lv,) = check_levels(level)
    if not np.isfinite(improvement) or improvement <= -1:
        raise SimulationError(f"improvement must be > -1 (0.10 = +10%), got {improvement!r}")
    if not np.isfinite(stall_reduction_months) or stall_reduction_months < 0:
        raise SimulationError(f"stall_reduction_months must be >= 0, got {stall_reduction_months!r}")
    aged = post.n_ages > 1
    if aged and stall_reduction_months != int(stall_reduction_months):
        raise SimulationError("with time in stage the stall lever moves whole months: stall_reduction_months must "
                              f"be a whole number, got {stall_reduction_months!r}")
    base = _mean_wins(post, x0, leads, months)
    stall = None if aged else post.expected_stall()            # (draws, K), memoryless stages only
    rows = []
    for k, (code, name) in enumerate(zip(post.stages, _names(post))):
        conv = post.adjust(conversion={code: 1.0 + improvement})
        if aged:
            quicker = shift_leaving(post.rates, k, int(stall_reduction_months))
        else:
            E = stall[:, k]
            quicker = scale_leaving(post.rates, k, E / np.maximum(1.0, E - stall_reduction_months))
        quick = replace(post, rates=quicker)
        for lever, scen in ((f"conversion +{100 * improvement:g}%", conv),
                            (f"stall {stall_reduction_months:g} month{'' if stall_reduction_months == 1 else 's'} "
                             f"shorter", quick)):
            extra = _mean_wins(scen, x0, leads, months) - base
            lo, hi = central_interval(extra, lv)
            rows.append({"stage": code, "name": name, "lever": lever, "extra_wins_mean": float(extra.mean()),
                         "extra_wins_lo": float(lo), "extra_wins_hi": float(hi),
                         "p_positive": float(np.mean(extra > 1e-12))})
    out = pd.DataFrame(rows).sort_values("extra_wins_mean", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["focus"] = np.where(out["rank"] == 1, "focus here", "")
    return out


def stall_ranking(post: PosteriorFunnel, *, level: float = 0.8) -> pd.DataFrame:
    """Months prospects stall in each stage, ranked from the longest.

    With several ages the months are counted up to the cold age (see
    :meth:`PosteriorFunnel.expected_stall`).

    Returns
    -------
    DataFrame
        ``rank, stage, name, expected_months_mean/lo/hi, median_months_mean/lo/hi,
        share`` (share of the summed expected stall over stages).
    """
    (lv,) = check_levels(level)
    e = post.expected_stall()
    med = post.median_stall()
    e_lo, e_hi = central_interval(e, lv)
    m_lo, m_hi = central_interval(med, lv)
    out = pd.DataFrame({"stage": list(post.stages), "name": _names(post),
                        "expected_months_mean": e.mean(0), "expected_months_lo": e_lo, "expected_months_hi": e_hi,
                        "median_months_mean": med.mean(0), "median_months_lo": m_lo, "median_months_hi": m_hi})
    out["share"] = out["expected_months_mean"] / out["expected_months_mean"].sum()
    out = out.sort_values("expected_months_mean", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _won_within(post: PosteriorFunnel, months: int, start: object | None) -> np.ndarray:
    """P(won within months 1..M | open at (stage, age) at the cut-off), (D, K, A), average months."""
    return window_win_probabilities(post, season_months(post, start, months), (1, months))[1]


def pipeline_coverage(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    targets_per_month: float | Sequence[float],
    months: int,
    *,
    level: float = 0.8,
    start: object | None = None,
) -> pd.DataFrame:
    """How much of the win target the open pipeline covers in the next ``months`` months.

    Parameters
    ----------
    post, pipeline, start
        As in :func:`forecast` (the pipeline enters by age).
    targets_per_month : float or sequence of float
        Win target per month (one number, or one per month).
    months : int
        Months ahead (1..months after the cut-off month).

    Returns
    -------
    DataFrame
        One row per open stage and a ``TOTAL`` row: ``stage, open, win_prob_mean``
        (P(won within the months) for one of the stage's open deals, averaged over their
        ages; for a stage without open deals, a deal that just arrived),
        ``expected_wins_mean/lo/hi``, ``coverage`` (expected wins / total target) and
        ``open_per_target`` (open deals per targeted win, the classic spreadsheet ratio).
    """
    M = check_horizon(months, "months")
    (lv,) = check_levels(level)
    tgt = new_leads_vector(targets_per_month, M, name="targets_per_month")
    total_target = float(tgt.sum())
    if tgt.ndim != 1 or total_target <= 0:
        raise SimulationError("targets_per_month must be positive in at least one month to compute coverage")
    x0 = pipeline_state(post, pipeline)
    win = _won_within(post, M, start)                        # (D, K, A)
    exp = np.einsum("dka,ka->dk", win, x0)
    all_exp = np.column_stack([exp, exp.sum(1)])
    lo, hi = central_interval(all_exp, lv)
    n = x0.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_deal = np.where(n > 0, exp.mean(0) / np.where(n > 0, n, 1.0), win[..., 0].mean(0))
    out = pd.DataFrame({"stage": list(post.stages) + ["TOTAL"], "open": np.append(n, n.sum()).astype(np.int64),
                        "win_prob_mean": np.append(per_deal, np.nan), "expected_wins_mean": all_exp.mean(0),
                        "expected_wins_lo": lo, "expected_wins_hi": hi})
    out["coverage"] = out["expected_wins_mean"] / total_target
    out["open_per_target"] = out["open"] / total_target
    return out


def pipeline_outlook(post: PosteriorFunnel, pipeline: PipelineLike, *, months: int = 6,
                     start: object | None = None, level: float = 0.8) -> pd.DataFrame:
    """Today's open pipeline: how much of it is cold and how much of it will be won.

    Parameters
    ----------
    post, pipeline, start
        As in :func:`forecast` (the pipeline enters by age).
    months : int
        Months ahead for ``p_won_within``.
    level : float
        Central interval level.

    Returns
    -------
    DataFrame
        One row per open stage and ``TOTAL``: ``stage, open``; ``cold`` (open leads that
        sat ``post.cold_after`` or more months in their stage without moving: the chain's
        cold age) and ``cold_share`` (both NaN for a memoryless posterior, which has no
        cold age); ``win_rate_mean/lo/hi``, the eventual win rate of these open leads
        (:meth:`PosteriorFunnel.pipeline_outcomes` per lead, cold leads counting as not
        won); ``p_won_within_mean/lo/hi``, P(won within ``months``) per open lead at the
        fitted rates of every age, as forecasts simulate them (average months). The two
        differ in how they treat cold leads, so an old stage's ``p_won_within`` can
        exceed its eventual ``win_rate``. ``unlikely`` and ``unlikely_share``: open leads
        whose chance of ever being won (posterior mean for their stage and age) is below
        :data:`UNLIKELY_FRACTION` of a new lead's, cold or not (the cold age can exceed
        the age of every open lead, while many are already long shots). Rates are NaN
        for a stage without open leads. ``attrs["new_lead_win_rate"]`` holds (mean, lo,
        hi) of the win rate of a new lead.
    """
    M = check_horizon(months, "months")
    (lv,) = check_levels(level)
    x0 = pipeline_state(post, pipeline)
    n = np.append(x0.sum(1), x0.sum())
    p_win = chain.absorption_by_age(post.rates)[..., 0]             # (draws, stage, age)
    eventual = np.einsum("dka,ka->dk", p_win, x0)
    lw = post.lead_win_rate()
    long_shot = p_win.mean(0) < UNLIKELY_FRACTION * lw.mean()
    soon = np.einsum("dka,ka->dk", _won_within(post, M, start), x0)
    out = pd.DataFrame({"stage": list(post.stages) + ["TOTAL"], "open": n.astype(np.int64)})
    cold = np.append(x0[:, -1], x0[:, -1].sum()) if post.cold_after is not None else np.full(n.size, np.nan)
    out["cold"] = cold
    unlikely = (x0 * long_shot).sum(1)
    out["unlikely"] = np.append(unlikely, unlikely.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cold_share"] = np.where(n > 0, cold / np.where(n > 0, n, 1.0), np.nan)
        out["unlikely_share"] = np.where(n > 0, out["unlikely"] / np.where(n > 0, n, 1.0), np.nan)
        for key, wins in (("win_rate", eventual), ("p_won_within", soon)):
            rate = np.column_stack([wins, wins.sum(1)]) / np.where(n > 0, n, np.nan)[None, :]
            lo, hi = central_interval(np.nan_to_num(rate), lv)
            out[f"{key}_mean"] = rate.mean(0)
            out[f"{key}_lo"] = np.where(n > 0, lo, np.nan)
            out[f"{key}_hi"] = np.where(n > 0, hi, np.nan)
    out.attrs["new_lead_win_rate"] = (float(lw.mean()),) + tuple(float(v) for v in central_interval(lw, lv))
    out.attrs["months"] = M
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
        of prospects in the stage who move on rather than being lost or going cold).
    new_leads : float
        New leads per month (constant).

    Returns
    -------
    DataFrame
        ``stage, benchmark, conversion_mean/lo/hi, p_below, gap_mean/lo/hi`` (benchmark
        minus conversion) and ``wins_gap_mean/lo/hi``: the long-run wins per month
        from ``new_leads`` if the stage converted at least at the benchmark (its onward
        moves scaled by ``max(conversion, benchmark) / conversion`` per draw at every
        age, :func:`funnel_models.posterior.scale_forward`) minus the wins per month now
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
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(c > 0, np.maximum(c, b) / np.where(c > 0, c, 1.0), 1.0)
        wins = replace(post, rates=scale_forward(post.rates, k, factor)).lead_win_rate() * L - base
        stats = {}
        for key, d in (("conversion", c), ("gap", gap), ("wins_gap", wins)):
            lo, hi = central_interval(d, lv)
            stats.update({f"{key}_mean": float(d.mean()), f"{key}_lo": float(lo), f"{key}_hi": float(hi)})
        rows.append({"stage": code, "benchmark": float(b), **{k_: stats[k_] for k_ in
                     ("conversion_mean", "conversion_lo", "conversion_hi")},
                     "p_below": float(np.mean(c < b)),
                     **{k_: stats[k_] for k_ in ("gap_mean", "gap_lo", "gap_hi", "wins_gap_mean", "wins_gap_lo",
                                                  "wins_gap_hi")}})
    return pd.DataFrame(rows)
