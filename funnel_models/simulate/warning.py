"""Early warning: is this month's funnel where the model expected it to be?

From last month's open counts and this month's new leads, the posterior predictive of
this month's counts is simulated (real multinomial moves, one month). Stages whose
observed count falls outside the central interval are flagged, and the gap between the
observed state and the expected state is projected onto the wins of the coming months
(exact expectations per draw, no new leads: they would be the same in both).

Counts follow :func:`funnel_models.data.derive.stage_counts`: open stages are leads in the
stage at the month end, WON / LOST are leads closed during the month.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> res = early_warning(post, {"LEAD": 100, "MQL": 50, "SQL": 40, "DEMO": 30, "PROP": 20, "NEGO": 10},
...                     {"LEAD": 5, "MQL": 60, "SQL": 30, "DEMO": 25, "PROP": 18, "NEGO": 10}, 100)
>>> res.stages.set_index("stage").loc["LEAD", "flag"]
'low'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..posterior import PosteriorFunnel, interval
from .core import (PipelineLike, SeedLike, check_horizon, check_levels, expected_chain, make_rng, pipeline_counts,
                   simulate_chain, sims_for)

__all__ = ["WarningResult", "early_warning"]

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
) -> WarningResult:
    """Flag stages whose count this month is outside the posterior predictive interval.

    Parameters
    ----------
    post : PosteriorFunnel
    previous_state : mapping / Series / DataFrame
        Open counts per stage at the end of last month (closed entries are ignored).
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

    Returns
    -------
    WarningResult
    """
    (lv,) = check_levels(level)
    H = check_horizon(horizon)
    K = post.n_stages
    prev = pipeline_counts(post, previous_state, name="previous_state", allow_closed=True)
    prev[K:] = 0.0
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
    has_closed = [s in keys for s in ("WON", "LOST")]
    obs = pipeline_counts(post, current_counts, name="current_counts", allow_closed=True)
    L = float(new_leads_this_month)
    if not np.isfinite(L) or L < 0:
        raise SimulationError(f"new_leads_this_month must be a number >= 0, got {new_leads_this_month!r}")
    reps = sims_for(post.n_draws, sims_per_draw, MIN_WARNING_SIMS)
    idx = np.repeat(np.arange(post.n_draws), reps)
    rng = make_rng(seed)
    ent, state = simulate_chain(post.P[idx], post.entry[idx], prev, np.array([round(L)]), 1, rng)
    pred = np.concatenate([state[:, 0, :K], ent[:, 0, K:]], axis=1).astype(float)
    lo, hi = interval(pred, lv)
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
    # projection: observed state vs expected state (per draw), no new leads
    _, e_state = expected_chain(post.P, post.entry, prev, np.array([round(L)], float), 1)
    x_exp = np.zeros((post.n_draws, K + 2))
    x_exp[:, :K] = e_state[:, 0, :K]
    zeros = np.zeros(H)
    w_obs, _ = expected_chain(post.P, post.entry, np.append(obs[:K], [0.0, 0.0]), zeros, H)
    w_exp, _ = expected_chain(post.P, post.entry, x_exp, zeros, H)
    diff = w_obs[..., K] - w_exp[..., K]
    d_lo, d_hi = interval(diff, lv)
    projection = pd.DataFrame({"month_ahead": np.arange(1, H + 1), "wins_from_observed": w_obs[..., K].mean(0),
                               "wins_from_expected": w_exp[..., K].mean(0), "difference_mean": diff.mean(0),
                               "difference_lo": d_lo, "difference_hi": d_hi,
                               "cumulative_difference": np.cumsum(diff.mean(0))})
    return WarningResult(stages=stages, projection=projection, predicted=pred, level=lv)
