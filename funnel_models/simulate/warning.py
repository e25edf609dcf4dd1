"""Early warning: is this month's funnel where the model expected it to be, and what follows?

:func:`early_warning`: from last month's open pipeline (by age) and this month's new
leads, the posterior predictive of this month's counts is simulated (real multinomial
moves and a fresh month shock per simulated month). Stages whose observed count falls
outside the central interval are flagged, and the gap between the observed state and the
expected state is projected onto the wins of the coming months (exact expectations per
draw over the average months, no new leads: they would be the same in both).

:func:`inflow_effect`: the lagged effect of this month's inflow on the wins of each coming
month ("few mailers this month, fewer sales in three months"): the observed new leads
against the inflow model's expectation, carried through the chain.

Counts follow :func:`funnel_models.data.derive.stage_counts`: open stages are leads in the
stage at the month end, WON / LOST are leads closed during the month. ``start`` is last
month (the previous state's cut-off); "this month" is forecast month 1 after it.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> res = early_warning(post, {"LEAD": 100, "MQL": 50, "SQL": 40, "DEMO": 30, "PROP": 20, "NEGO": 10},
...                     {"LEAD": 5, "MQL": 60, "SQL": 30, "DEMO": 25, "PROP": 18, "NEGO": 10}, 100)
>>> res.stages.set_index("stage").loc["LEAD", "flag"]
'low'
>>> fx = inflow_effect(post, None, observed_leads=60, expected_leads=100, horizon=4)
>>> bool(fx["difference_mean"].sum() < 0)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..intervals import central_interval, check_levels
from ..posterior import PosteriorFunnel
from .core import (PipelineLike, SeedLike, check_horizon, expected_run, forecast_months, make_rng, observed_counts,
                   pipeline_state, sampled_run, season_months, simulation_draws)

__all__ = ["WarningResult", "early_warning", "inflow_effect"]

#: Default minimum number of simulated months behind the predictive intervals.
MIN_WARNING_SIMS = 4000


@dataclass(frozen=True)
class WarningResult:
    """Early-warning tables.

    Attributes
    ----------
    stages : DataFrame
        ``stage, observed, expected, lo, hi, percentile, flag`` (``'low'``, ``'high'`` or
        ``''``); ``percentile`` is the mid-rank of the observed count in the predictive.
    projection : DataFrame
        ``month_ahead, wins_from_observed, wins_from_expected, difference_mean,
        difference_lo, difference_hi, cumulative_difference``.
    predicted : ndarray (sims, K+2)
        Predictive draws of this month's counts.
    level : float
    """

    stages: pd.DataFrame
    projection: pd.DataFrame
    predicted: np.ndarray
    level: float

    @property
    def flagged(self) -> list[str]:
        """Stages outside the predictive interval."""
        return self.stages.loc[self.stages["flag"] != "", "stage"].tolist()


def _present_states(post: PosteriorFunnel, current_counts: PipelineLike) -> tuple[bool, bool]:
    """Check every open stage is given; return whether WON / LOST are."""
    if isinstance(current_counts, pd.DataFrame):
        if "month" in current_counts.columns and current_counts["month"].nunique() > 1:
            raise SimulationError("current_counts holds several months; pass this month's rows only, e.g. "
                                  "counts[counts['month'] == counts['month'].max()]")
        keys = set(current_counts["stage"].astype(str)) if "stage" in current_counts.columns else set()
    elif isinstance(current_counts, (Mapping, pd.Series)):
        keys = set(map(str, current_counts.keys()))
    else:
        keys = set()
    missing = [s for s in post.stages if s not in keys]
    if keys and missing:
        raise SimulationError(f"current_counts misses open stage(s) {missing}; give every open stage's "
                              "count this month (0 included). WON and LOST are optional.")
    return "WON" in keys, "LOST" in keys


def _projection(post: PosteriorFunnel, prev: np.ndarray, obs: np.ndarray, leads: float, months: np.ndarray,
                lv: float) -> pd.DataFrame:
    """Wins of the coming months from the observed state minus from the expected state.

    The observed open counts (stage totals) are spread over ages like the expected state
    of the same draw (a stage expected empty gets its leads at age 0).
    """
    K, A = post.n_stages, post.n_ages
    _, _, x_exp = expected_run(post, prev, np.array([leads]), months[:1])          # (D, K, A)
    tot = x_exp.sum(-1, keepdims=True)
    fresh = np.zeros((K, A))
    fresh[:, 0] = 1.0
    share = np.where(tot > 0, x_exp / np.where(tot > 0, tot, 1.0), fresh[None])
    x_obs = share * obs[None, :K, None]
    H = len(months) - 1
    zeros = np.zeros(H)
    w_obs = expected_run(post, x_obs, zeros, months[1:])[0][..., K]
    w_exp = expected_run(post, x_exp, zeros, months[1:])[0][..., K]
    diff = w_obs - w_exp
    d_lo, d_hi = central_interval(diff, lv)
    return pd.DataFrame({"month_ahead": np.arange(1, H + 1), "wins_from_observed": w_obs.mean(0),
                         "wins_from_expected": w_exp.mean(0), "difference_mean": diff.mean(0),
                         "difference_lo": d_lo, "difference_hi": d_hi,
                         "cumulative_difference": np.cumsum(diff.mean(0))})


def early_warning(
    post: PosteriorFunnel,
    previous_state: PipelineLike,
    current_counts: PipelineLike,
    new_leads_this_month: float,
    *,
    level: float = 0.9,
    horizon: int = 6,
    seed: SeedLike = 0,
    sims_per_draw: int | None = None,
    start: object | None = None,
) -> WarningResult:
    """Flag stages whose count this month is outside the posterior predictive interval.

    Parameters
    ----------
    post : PosteriorFunnel
    previous_state : DataFrame / mapping / Series
        Last month's open pipeline: a frame from ``derive.open_pipeline`` at last month's
        end (by age), or counts per stage (taken as age 0; see
        :func:`~funnel_models.simulate.core.pipeline_state`).
    current_counts : mapping / Series / DataFrame
        This month's observed counts: every open stage (required, 0 included), WON and
        LOST optional (closed this month; not flagged when absent). A frame needs
        ``stage`` and ``count`` columns (one month of :func:`derive.stage_counts`).
    new_leads_this_month : float
        New leads that entered this month (rounded to whole leads).
    level : float
        Central predictive interval (0.9: flag outside the 5%-95% range).
    horizon : int
        Months ahead for the projection on wins.
    seed : int or Generator
    sims_per_draw : int, optional
        Simulated months per draw (default: enough for 4000 in total).
    start : date-like, optional
        Last month (the previous state's cut-off); needed for a seasonal posterior.

    Returns
    -------
    WarningResult
    """
    (lv,) = check_levels(level)
    H = check_horizon(horizon)
    K = post.n_stages
    prev = pipeline_state(post, previous_state, name="previous_state")
    has_closed = _present_states(post, current_counts)
    obs = observed_counts(post, current_counts, name="current_counts")
    L = float(new_leads_this_month)
    if not np.isfinite(L) or L < 0:
        raise SimulationError(f"new_leads_this_month must be a number >= 0, got {new_leads_this_month!r}")
    months = season_months(post, start, H + 1)
    idx = simulation_draws(post.n_draws, sims_per_draw, MIN_WARNING_SIMS)
    ent, opened, _ = sampled_run(post.take(idx), prev, np.full((idx.size, 1), round(L)), months[:1],
                                 make_rng(seed))
    pred = np.concatenate([opened[:, 0, :K], ent[:, 0, K:]], axis=1).astype(float)
    lo, hi = central_interval(pred, lv)
    pct = (pred < obs[None]).mean(0) + 0.5 * (pred == obs[None]).mean(0)
    flag = np.where(obs < lo, "low", np.where(obs > hi, "high", ""))
    observed = obs.copy()
    for j, present in enumerate(has_closed):
        if not present:
            observed[K + j] = np.nan
            flag[K + j] = ""
            pct[K + j] = np.nan
    stages = pd.DataFrame({"stage": list(post.states), "observed": observed, "expected": pred.mean(0),
                           "lo": lo, "hi": hi, "percentile": pct, "flag": flag})
    return WarningResult(stages=stages, projection=_projection(post, prev, obs, float(round(L)), months, lv),
                         predicted=pred, level=lv)


def inflow_effect(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    observed_leads: float,
    expected_leads: float | np.ndarray,
    horizon: int,
    *,
    start: object | None = None,
    level: float = 0.8,
    seed: SeedLike = 0,
) -> pd.DataFrame:
    """The lagged effect of this month's inflow on the wins of each coming month.

    "Few mailers this month, fewer sales in three months": this month's new leads
    (``observed_leads``, entering in forecast month 1 after the cut-off ``start``)
    against what the inflow model expected for the month, carried through the chain.
    A lead entering in month 1 is won in month ``h`` with a probability that rises and
    falls with the funnel's lags, so the shortfall shows where it hurts.

    Parameters
    ----------
    post : PosteriorFunnel
    pipeline : DataFrame, mapping, Series or None
        The open pipeline at the cut-off (by age), for the wins the coming months expect.
    observed_leads : float
        New leads seen this month.
    expected_leads : float, ndarray (n,) or ndarray (n, months)
        The inflow model's expectation for this month, or its draws (of this month, or
        of the coming months, whose first column is this month; paired with the
        posterior draws in a seeded random order, every draw of both used; the intervals
        carry both uncertainties).
    horizon : int
        Months ahead (1..H, month 1 being this month).
    start, level, seed
        Cut-off month (for the season and the labels), central interval level, seed of
        the resampling of inflow draws.

    Returns
    -------
    DataFrame
        One row per month: ``month, month_ahead``, ``wins_expected_inflow`` and
        ``wins_observed_inflow`` (posterior-mean expected wins from the pipeline plus this
        month's leads, at the expected and the observed inflow; later months' leads add
        the same to both and are left out), ``difference_mean/lo/hi`` (observed minus
        expected inflow), ``cumulative_difference_mean/lo/hi`` and ``p_fewer``
        (probability that the month has fewer wins because of this month's inflow).
    """
    H = check_horizon(horizon)
    (lv,) = check_levels(level)
    obs = float(observed_leads)
    exp = np.atleast_1d(np.asarray(expected_leads, dtype=float))
    exp = exp[:, 0] if exp.ndim == 2 else exp                      # inflow draws (n, H): this month
    if not np.isfinite(obs) or obs < 0 or exp.ndim != 1 or not np.all(np.isfinite(exp)) or np.any(exp < 0):
        raise SimulationError(f"observed_leads must be a number >= 0 and expected_leads a number or 1-D draws "
                              f">= 0; got {observed_leads!r} and an array of shape {np.shape(expected_leads)}")
    x0 = pipeline_state(post, pipeline, integer=False)
    months = season_months(post, start, H)
    one = np.zeros(H)
    one[0] = 1.0
    per_lead = expected_run(post, np.zeros_like(x0), one, months)[0][..., post.n_stages]      # (D, H)
    from_pipe = expected_run(post, x0, np.zeros(H), months)[0][..., post.n_stages]
    N = max(post.n_draws, exp.size)                                  # pair draws: every one used
    d_idx = np.arange(N) % post.n_draws
    drawn = exp[make_rng(seed).permutation(N) % exp.size]
    per_lead, from_pipe = per_lead[d_idx], from_pipe[d_idx]
    diff = (obs - drawn)[:, None] * per_lead
    cum = np.cumsum(diff, axis=1)
    out = pd.DataFrame({"month": forecast_months(start, H), "month_ahead": np.arange(1, H + 1),
                        "wins_expected_inflow": (from_pipe + drawn[:, None] * per_lead).mean(0),
                        "wins_observed_inflow": (from_pipe + obs * per_lead).mean(0)})
    for key, d in (("difference", diff), ("cumulative_difference", cum)):
        lo, hi = central_interval(d, lv)
        out[f"{key}_mean"], out[f"{key}_lo"], out[f"{key}_hi"] = d.mean(0), lo, hi
    out["p_fewer"] = (diff < 0).mean(0)
    return out
