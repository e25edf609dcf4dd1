"""The simulations behind a leads-needed question that do not depend on its target.

Steps 1-3 of :mod:`funnel_models.simulate.planning`: month paths (seasonal offsets and,
with month shocks, one fresh path per simulation), the probability that a new lead
entering in month ``m`` or an open lead at (stage, age) is won inside the window (one
backward pass of :func:`funnel_models.chain.won_to_go` per path), and the seeded wins of
today's pipeline and of a baseline inflow per simulation. :func:`plan_sims` returns them
as :class:`PlanSims`, which :func:`~funnel_models.simulate.planning.leads_needed` then
turns into an answer for any target, unit, confidence or plan shape.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> truth = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> sims = plan_sims(truth, 3, pipeline={"NEGO": 10})      # one draw: 2000 simulated pipelines
>>> float(sims.q.max()), sims.idx.size                     # new leads need > 3 months to be won
(0.0, 2000)
>>> round(sims.expected_pipeline_wins, 2), round(float(sims.pipeline_wins.mean()), 2)
(5.46, 5.46)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import chain
from ..errors import SimulationError
from ..posterior import PosteriorFunnel
from .core import PipelineLike, SeedLike, make_rng, pipeline_state, round_leads, season_months, simulation_draws
from .forecast import check_window

__all__ = ["PlanSims", "plan_sims", "window_win_probabilities", "MIN_PLAN_SIMS", "CHUNK_DRAWS"]

#: Default minimum number of pipeline simulations behind a plan.
MIN_PLAN_SIMS = 2000
#: Posterior draws per block of the backward recursion (bounds memory with many ages and
#: keeps the working arrays in cache).
CHUNK_DRAWS = 512


def window_win_probabilities(post: PosteriorFunnel, months: np.ndarray, window: tuple[int, int],
                             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """P(won inside the window) for new leads by entry month and for open leads by (stage, age).

    Parameters
    ----------
    post : PosteriorFunnel
        One month path per draw (repeat draws for several paths).
    months : ndarray (T,)
        Calendar months of forecast months 1..T (:func:`~funnel_models.simulate.core.season_months`).
    window : (first, last)
        Forecast months ``a..T``.
    rng : Generator, optional
        Draws month shocks (:meth:`PosteriorFunnel.month_path`); None: average months.

    Returns
    -------
    q : ndarray (draws, T)
        For a lead entering in month m = 1..T.
    r : ndarray (draws, K, A)
        For a lead open at (stage, age) at the cut-off.
    """
    a, T = window
    K = post.n_stages
    qs, rs = [], []
    m = np.arange(1, T + 1)
    materialised = post.season is not None or (post.has_shocks and rng is not None)
    for lo in range(0, post.n_draws, CHUNK_DRAWS):
        hi = min(lo + CHUNK_DRAWS, post.n_draws)
        if materialised:
            rates, entry = post.take(np.arange(lo, hi)).month_path(months[:T], rng)
        else:                                       # average months: each draw's own rates, as month_path
            r, en = post.rates[lo:hi], post.entry[lo:hi]
            rates = np.broadcast_to(r[:, None], (hi - lo, T) + r.shape[1:])
            entry = np.broadcast_to(en[:, None], (hi - lo, T, en.shape[-1]))
        v = chain.won_to_go(rates, T)                                   # won in t+1..T
        if a > 1:                                                       # minus won in t+1..a-1
            v = v - np.pad(chain.won_to_go(rates, a - 1), ((0, 0), (0, T - a + 1), (0, 0), (0, 0)))
        v = np.clip(v, 0.0, 1.0)
        q = np.einsum("dmk,dmk->dm", entry[..., :K], v[:, 1:, :, 0]) + entry[..., K] * (m >= a)
        qs.append(np.where(q > 1e-12, np.clip(q, 0.0, 1.0), 0.0))     # rounding noise is no chance to win
        rs.append(v[:, 0])
    return np.concatenate(qs), np.concatenate(rs)


def _min_months_to_win(post: PosteriorFunnel) -> int | None:
    """Fewest months after the entry month in which a new lead can be won (breadth-first
    over the (stage, age) states possible in any draw); None if never."""
    K, A = post.n_stages, post.n_ages
    rates = (post.rates > 0).any(axis=0, keepdims=True).astype(float)
    entry = (post.entry > 0).any(axis=0, keepdims=True).astype(float)
    if entry[0, K] > 0:
        return 0
    x = np.zeros((1, K, A))
    x[0, :, 0] = entry[0, :K]
    for months in range(1, K * A + 2):
        x, arrivals = chain.step_expected(rates, entry, x, np.zeros(1))
        if arrivals[0, K] > 0:
            return months
        x = (x > 0).astype(float)
    return None


def _baseline_wins(baseline: np.ndarray | None, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Wins of the baseline inflow in the window per simulation: one inflow draw each."""
    S, T = q.shape
    if baseline is None:
        return np.zeros(S)
    b = np.asarray(baseline, dtype=float)
    if b.ndim != 2 or b.shape[1] < T or b.shape[0] < 1 or not np.all(np.isfinite(b)) or np.any(b < 0):
        raise SimulationError(f"baseline must be inflow draws of shape (draws, months >= {T}) with counts >= 0 "
                              f"(one column per forecast month from month 1); got shape {b.shape}")
    leads = round_leads(b[rng.integers(0, b.shape[0], S), :T])
    return rng.binomial(leads, q).sum(axis=1).astype(float)


@dataclass(frozen=True)
class PlanSims:
    """The part of a leads-needed question that does not depend on its target
    (:func:`plan_sims`): month paths, P(won in the window) ``q`` of new leads per entry
    month, and per simulation its path ``row``, posterior draw ``idx`` and the wins of
    today's pipeline and of the baseline inflow. Reusable for any target, unit, confidence
    or plan shape on the same posterior, window, pipeline, seed and baseline (``has_baseline``:
    one was given)."""

    q: np.ndarray
    row: np.ndarray
    idx: np.ndarray
    pipeline_wins: np.ndarray
    baseline_wins: np.ndarray
    window: tuple[int, int]
    n_draws: int
    min_months_to_win: int | None
    expected_pipeline_wins: float
    has_baseline: bool = False


def plan_sims(post: PosteriorFunnel, window: int | tuple[int, int], *, pipeline: PipelineLike = None,
              seed: SeedLike = 0, sims_per_draw: int | None = None, start: object | None = None,
              baseline: np.ndarray | None = None) -> PlanSims:
    """Simulate what a leads-needed question needs besides its target (steps 1-3 of the
    module docstring); arguments as in :func:`leads_needed`."""
    a, T = check_window(window)
    x0 = pipeline_state(post, pipeline).astype(np.int64)
    months = season_months(post, start, T)
    idx = simulation_draws(post.n_draws, sims_per_draw, MIN_PLAN_SIMS)
    path_rng, pipe_rng, base_rng = make_rng(seed).spawn(3)
    if post.has_shocks:                                              # one shocked path per simulation
        q, r = window_win_probabilities(post.take(idx), months, (a, T), path_rng)
        row = np.arange(idx.size)
    else:                                                              # average months: one per draw
        q, r = window_win_probabilities(post, months, (a, T))
        row = idx
    k, age = np.nonzero(x0)                        # empty (stage, age) cells would draw nothing
    return PlanSims(q=q, row=row, idx=idx, pipeline_wins=pipe_rng.binomial(x0[k, age], r[:, k, age][row]).sum(axis=1),
                    baseline_wins=_baseline_wins(baseline, q[row], base_rng), window=(a, T), n_draws=post.n_draws,
                    min_months_to_win=_min_months_to_win(post),
                    expected_pipeline_wins=float((r * x0[None]).sum(axis=(1, 2)).mean()),
                    has_baseline=baseline is not None)
