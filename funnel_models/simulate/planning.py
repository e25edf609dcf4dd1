"""How many new leads per month are needed to hit a target with a given confidence.

Method (exact per draw where it can be, fast everywhere):

1. Month paths: months 1..T get their seasonal offsets (``start``) and, when the posterior
   has month shocks, one path of fresh shocks per simulated future drawn with the seeded
   generator, so P(hit) includes month-to-month variation (without shocks one path per
   posterior draw, the average months). Every lead is independent given its path.
2. Per path, :func:`funnel_models.chain.won_to_go` runs backwards through the months and
   gives the probability that an open lead at any (stage, age) at the end of month ``t``
   is won inside the window ``(a, T)``. From it: ``q[m]``, the probability that a lead
   entering in month ``m`` is won in the window (it sits at age 0 at the end of month
   ``m``, or is won at once), and ``r[k, age]`` for today's open leads.
3. The current pipeline's wins in the window are a sum of ``Binomial(count[k, age],
   r[k, age])`` per simulated future, seeded, with at least ``min_sims`` simulations
   (draws are reused when the posterior has few). With ``baseline`` inflow draws (leads
   that come anyway), each future also takes one inflow path and its wins are
   ``Binomial(baseline_m, q[m])`` per month. Steps 1-3 do not depend on the target:
   :func:`~funnel_models.simulate.plansims.plan_sims` runs them once for many questions.
4. Given a plan ``v_m`` (leads entering in months ``1..T``), new-lead wins are a sum of
   independent binomials ``Binomial(v_m, q[m])``. They are replaced by one binomial
   with ``n = sum of v_m`` over the months whose leads can still be won (``q > 0``) and
   the lead-weighted mean ``p = sum v_m q_m / n``. This is EXACT when only one month's
   cohort can be won in the window (exact binomial per draw) and otherwise an
   approximation that preserves the mean and slightly overstates the variance (a sum of
   Bernoullis with unequal probabilities has less variance than the binomial with their
   mean probability), so the plan errs on the safe side.
5. ``P(hit | plan) = mean over futures of binom.sf(needed - 1, n, p)``. For a constant
   plan ``L`` per month it increases with ``L`` (the binomial survival function
   increases with ``n`` at fixed ``p``), so the smallest ``L`` is found by bracketing
   around a normal approximation and narrowing the bracket over integers: by secant
   steps on the probit scale, each checked against its neighbour (a smooth rise needs
   two or three evaluations), with bisection whenever a step fails to halve the
   bracket. With a ``profile`` the plan is ``round(s * profile[m])``; the search runs
   over the integer total ``N`` with ``s = N / sum(profile[:T])`` (monotone up to
   rounding of the monthly split, so the bracket is only bisected).

Examples
--------
>>> import numpy as np
>>> from funnel_models.posterior import PosteriorFunnel
>>> P = np.array([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> post = PosteriorFunnel.from_point(["A"], P, np.array([0.0, 0.3, 0.7]))
>>> res = leads_needed(post, target=10, window=1, confidence=0.8)
>>> res.leads  # smallest L with P(Binomial(L, 0.3) >= 10) >= 0.8
40
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import binom

from ..errors import SimulationError
from ..posterior import PosteriorFunnel
from .core import PipelineLike, SeedLike
from .forecast import check_window
from .plansims import MIN_PLAN_SIMS, PlanSims, plan_sims, window_win_probabilities

__all__ = ["LeadsNeededResult", "leads_needed", "naive_win_rate", "PlanProblem", "plan_problem", "PlanSims",
           "plan_sims", "window_win_probabilities", "MIN_PLAN_SIMS"]

#: Number of points of the probability curve.
CURVE_POINTS = 25


@dataclass(frozen=True)
class LeadsNeededResult:
    """Answer of :func:`leads_needed`.

    Attributes
    ----------
    leads : int or None
        Constant plan: new leads per month (months 1..window end). With a ``profile``:
        the total new leads over months 1..window end. ``None`` when infeasible. With a
        ``baseline``: the leads to add on top of the baseline inflow.
    probability : float
        P(hit) achieved by ``leads`` (the best achievable when infeasible).
    feasible : bool
    message : str
        One sentence explaining the answer (or why there is none).
    curve : DataFrame
        ``leads, probability`` over a grid from 0 to about twice the answer (computed
        on first access: it costs as much as the search itself).
    naive_leads : int or None
        The spreadsheet answer (same unit as ``leads``): target wins divided by
        :attr:`naive_rate`, spread evenly over the window months, ignoring lags, the
        pipeline and chance.
    naive_probability : float
        P(hit) with the naive plan.
    naive_rate : float
        Product of the posterior-mean stage conversions along the main path (from the
        open stage where most new leads land through the last open stage).
    pipeline_probability : float
        P(hit) with the pipeline alone (no new leads at all).
    monthly_leads : ndarray or None
        New leads in months 1..window end under the answer.
    scale : float or None
        ``s`` of the answer (leads in month m = round(s * profile[m])); equals ``leads``
        for a constant plan.
    min_months_to_win : int or None
        Fewest months after its entry month in which a new lead can be won (0: in the
        entry month); None if new leads are never won.
    baseline_probability : float
        P(hit) with the pipeline and the uncertain ``baseline`` inflow and no plan (NaN
        without a baseline).
    """

    leads: int | None
    probability: float
    feasible: bool
    message: str
    naive_leads: int | None
    naive_probability: float
    naive_rate: float
    pipeline_probability: float
    monthly_leads: np.ndarray | None
    scale: float | None
    target: float
    target_unit: str
    window: tuple[int, int]
    confidence: float
    min_months_to_win: int | None
    expected_pipeline_wins: float
    problem: "PlanProblem" = field(repr=False, compare=False)
    curve_upto: int = 10
    meta: dict = field(default_factory=dict)
    baseline_probability: float = float("nan")

    @cached_property
    def curve(self) -> pd.DataFrame:
        """P(hit) over a grid of ``CURVE_POINTS`` plans from 0 to ``curve_upto`` (for plotting)."""
        prob = self.problem
        top = min(max(int(self.curve_upto), 2), prob.max_total)
        grid = np.unique(np.rint(np.linspace(0, top, CURVE_POINTS)).astype(np.int64))
        if self.leads is not None:
            grid = np.union1d(grid, [self.leads])
        return pd.DataFrame({"leads": grid, "probability": prob.probability(grid)})


def naive_win_rate(post: PosteriorFunnel) -> float:
    """Spreadsheet win rate: product of posterior-mean stage conversions along the main path.

    The main path starts at the open stage where most new leads land (largest mean
    entry probability) and runs through every later open stage to WON; each factor is
    the mean of :meth:`PosteriorFunnel.conversion`. Skips and the time to close are
    ignored, as a spreadsheet would.
    """
    K = post.n_stages
    k0 = int(np.argmax(post.entry[:, :K].mean(0)))
    return float(np.prod(post.conversion().mean(0)[k0:]))


@dataclass(frozen=True)
class PlanProblem:
    """Pre-computed pieces of a leads-needed question (see module docstring).

    ``q`` (paths, T): win-in-window probability of a lead entering in month m = 1..T on
    each month path; ``row`` (sims,): the path of each simulation; ``need`` (sims,): wins
    still needed from planned leads after the simulated pipeline (and baseline inflow);
    ``idx`` (sims,): posterior draw of each simulation; ``weights`` (T,): monthly split
    of a plan.
    """

    q: np.ndarray
    row: np.ndarray
    need: np.ndarray
    idx: np.ndarray
    weights: np.ndarray
    constant: bool
    max_total: int
    window: tuple[int, int]
    min_months_to_win: int | None
    expected_pipeline_wins: float
    pipeline_need: np.ndarray

    @property
    def horizon(self) -> int:
        """Last month of the window (plans cover months 1..T)."""
        return int(self.q.shape[1])

    def plan(self, total: np.ndarray | int) -> np.ndarray:
        """Monthly leads (G, T) for search values ``total`` (per month if constant, else total)."""
        t = np.atleast_1d(np.asarray(total, dtype=float))
        if self.constant:
            return np.repeat(t[:, None], self.horizon, axis=1)
        return np.rint(t[:, None] * self.weights[None, :])

    def probability(self, total: np.ndarray | int) -> np.ndarray:
        """P(hit) for each search value (vectorised over values)."""
        V = self.plan(total)                                # (G, T)
        mask = (self.q > 0).astype(float)
        n = mask @ V.T                                      # (paths, G)
        mean = self.q @ V.T
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n > 0, mean / np.where(n > 0, n, 1.0), 0.0)
        p = np.clip(p, 0.0, 1.0)
        sf = binom.sf(self.need[:, None] - 1, n[self.row], p[self.row])
        return sf.mean(axis=0)

    def upper_bound(self) -> float:
        """P(hit) with unlimited new leads."""
        can = (self.q > 0).any(axis=1)[self.row]
        return float(np.mean(np.where(can, 1.0, self.need <= 0)))


def _target_wins(post: PosteriorFunnel, target: float, target_unit: str) -> np.ndarray:
    """The target in wins, per draw."""
    if not np.isfinite(target) or target < 0:
        raise SimulationError(f"target must be a finite number >= 0, got {target!r}")
    if target_unit not in ("wins", "revenue"):
        raise SimulationError(f"target_unit must be 'wins' or 'revenue', got {target_unit!r}")
    if target_unit == "wins":
        return np.full(post.n_draws, float(math.ceil(target - 1e-9)))
    dv = post.deal_value
    if not np.all(np.isfinite(dv)) or np.any(dv <= 0):
        raise SimulationError("target_unit='revenue' needs positive deal values in the posterior, but "
                              "post.deal_value has NaN or non-positive draws; give the model a value "
                              "column or state the target in wins.")
    return np.ceil(target / dv - 1e-9)


def _plan_weights(profile: Sequence[float] | None, T: int, max_leads: int) -> tuple[np.ndarray, bool, int]:
    """Monthly split of a plan, whether it is constant, and the largest search value."""
    if isinstance(max_leads, bool) or not isinstance(max_leads, (int, np.integer)) or max_leads < 1:
        raise SimulationError(f"max_leads must be an int >= 1, got {max_leads!r}")
    if profile is None:
        return np.ones(T), True, int(max_leads)
    prof = np.asarray(profile, dtype=float)
    if prof.ndim != 1 or prof.size < T or not np.all(np.isfinite(prof)) or np.any(prof < 0):
        raise SimulationError(f"profile must list >= {T} non-negative numbers (months 1..{T}); "
                              f"got {np.asarray(profile).tolist()}")
    prof = prof[:T]
    if prof.sum() <= 0:
        raise SimulationError(f"profile is zero in every month 1..{T}; give some months a positive weight")
    weights = prof / prof.sum()
    return weights, False, int(math.floor(max_leads / weights.max()))


def plan_problem(post: PosteriorFunnel, target: float, window: int | tuple[int, int], *,
                 pipeline: PipelineLike = None, profile: Sequence[float] | None = None,
                 target_unit: str = "wins", seed: SeedLike = 0, max_leads: int = 1_000_000,
                 sims_per_draw: int | None = None, start: object | None = None,
                 baseline: np.ndarray | None = None, sims: PlanSims | None = None) -> PlanProblem:
    """Validate a leads-needed question and pre-compute what the search needs (``sims``:
    :func:`plan_sims` already run for this posterior and window)."""
    target_wins = _target_wins(post, target, target_unit)
    a, T = check_window(window)
    weights, constant, max_total = _plan_weights(profile, T, max_leads)
    if sims is None:
        sims = plan_sims(post, (a, T), pipeline=pipeline, seed=seed, sims_per_draw=sims_per_draw, start=start,
                         baseline=baseline)
    elif sims.window != (a, T) or sims.n_draws != post.n_draws:
        raise SimulationError(f"sims were simulated for window {sims.window} and {sims.n_draws} draws, not for "
                              f"window {(a, T)} and {post.n_draws} draws; run plan_sims for this question")
    need = target_wins[sims.idx] - sims.pipeline_wins
    return PlanProblem(q=sims.q, row=sims.row, need=need - sims.baseline_wins, idx=sims.idx, weights=weights,
                       constant=constant, max_total=max_total, window=(a, T),
                       min_months_to_win=sims.min_months_to_win,
                       expected_pipeline_wins=sims.expected_pipeline_wins, pipeline_need=need)


def _normal_guess(prob: PlanProblem, confidence: float) -> int:
    """Starting point of the exact search: the same question under a normal approximation."""
    unit = np.ones(prob.horizon) if prob.constant else prob.weights
    mean1 = prob.q @ unit                                   # expected new-lead wins per unit, (paths,)
    var1 = (prob.q * (1 - prob.q)) @ unit
    m1, v1 = mean1[prob.row], var1[prob.row]
    need = prob.need - 0.5

    def p_norm(n: float) -> float:
        sd = np.sqrt(np.maximum(n * v1, 1e-12))
        return float(np.mean(ndtr((n * m1 - need) / sd)))

    lo, hi = 0.0, 1.0
    while p_norm(hi) < confidence and hi < prob.max_total:
        lo, hi = hi, hi * 2
    while hi - lo > max(0.5, 0.002 * hi):                  # a guess within 0.2% is plenty
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p_norm(mid) < confidence else (lo, mid)
    return int(min(max(math.ceil(hi), 1), prob.max_total))


def _search(prob: PlanProblem, confidence: float, guess: int) -> tuple[int | None, float, int]:
    """Smallest integer N in [1, max_total] with P(N) >= confidence, P(0) < confidence known.

    Brackets around ``guess`` with steps growing geometrically, then bisects. Returns
    ``(None, P(max_total), evaluations)`` when even ``max_total`` falls short.
    """
    cache: dict[int, float] = {0: -1.0}

    def P(n: int) -> float:
        if n not in cache:
            cache[n] = float(prob.probability(n)[0])
        return cache[n]

    step = max(1, int(0.02 * guess))
    if P(guess) >= confidence:
        lo, hi = guess, guess
        while True:
            lo = max(0, hi - step)
            step *= 2
            if lo == 0 or P(lo) < confidence:
                break
            hi = lo
    else:
        lo = guess
        while True:
            hi = min(prob.max_total, lo + step)
            step *= 2
            if P(hi) >= confidence:
                break
            if hi == prob.max_total:
                return None, P(hi), len(cache) - 1
            lo = hi
    hi = _narrow(P, lo, hi, confidence, secant=prob.constant)
    return hi, P(hi), len(cache) - 1


def _narrow(P: Callable[[int], float], lo: int, hi: int, confidence: float, secant: bool) -> int:
    """Smallest integer N in (lo, hi] with P(N) >= confidence, given P(lo) < confidence <=
    P(hi) and P non-decreasing: bisection, or (``secant``) a secant step on the probit
    scale whose point and neighbour are both evaluated, with bisection whenever a step
    leaves more than half of the bracket. For a non-decreasing P both give the same N."""
    def z(p: float) -> float:
        return float(ndtri(min(max(p, 1e-12), 1.0 - 1e-12)))

    bisect = not secant
    while hi - lo > 1:
        width = hi - lo
        if bisect:
            mid = (lo + hi) // 2
        else:
            z_lo, z_hi = z(P(lo)), z(P(hi))
            frac = (z(confidence) - z_lo) / (z_hi - z_lo) if z_hi > z_lo else 0.5
            mid = min(max(int(round(lo + frac * width)), lo + 1), hi - 1)
        nxt = mid - 1 if P(mid) >= confidence else mid + 1      # the neighbour on the other side
        lo, hi = (lo, mid) if P(mid) >= confidence else (mid, hi)
        if not bisect and lo < nxt < hi:
            lo, hi = (lo, nxt) if P(nxt) >= confidence else (nxt, hi)
        bisect = not secant or hi - lo > width / 2
    return hi


def _naive_plan(post: PosteriorFunnel, prob: PlanProblem, target: float, target_unit: str
                ) -> tuple[int | None, float, float]:
    """The spreadsheet plan (leads, its P(hit), the naive win rate)."""
    a, T = prob.window
    rate = naive_win_rate(post)
    t_wins = target if target_unit == "wins" else target / float(np.mean(post.deal_value))
    in_window = prob.weights[a - 1:].sum()
    if rate <= 0 or in_window <= 0:
        return None, float("nan"), rate
    total_needed = t_wins / rate
    naive = int(math.ceil(total_needed / (T - a + 1))) if prob.constant else int(math.ceil(total_needed / in_window))
    return naive, float(prob.probability(naive)[0]), rate


def _why_infeasible(prob: PlanProblem, sup: float) -> str:
    a, T = prob.window
    if prob.min_months_to_win is None:
        return "new leads are never won under this posterior"
    if not (prob.q > 0).any() and T - 1 < prob.min_months_to_win:
        return (f"new leads need at least {prob.min_months_to_win} month(s) after their entry month "
                f"to be won, so leads entering in month 1 are first won in month {1 + prob.min_months_to_win}")
    if not (prob.q > 0).any():
        return f"new leads cannot be won inside months {a}-{T} under this posterior"
    return f"even unlimited new leads give at most P={sup:.2f} over the posterior draws"


def _answer(prob: PlanProblem, confidence: float, what: str, p0: float, max_leads: int,
            profile: Sequence[float] | None, common: dict) -> LeadsNeededResult:
    """Search the plan once the trivial and impossible cases are out."""
    T = prob.horizon
    alone = "the pipeline alone" if np.isnan(common["baseline_probability"]) else "the pipeline and baseline"
    leads, p, evals = _search(prob, confidence, _normal_guess(prob, confidence))
    common["meta"]["evaluations"] = evals
    if leads is None:
        msg = (f"no number of new leads up to max_leads={max_leads} per month reaches {what} with "
               f"P >= {confidence:g}: the maximum gives P={p:.2f} ({alone} P={p0:.2f}); "
               "raise max_leads, lower the target or widen the window")
        return LeadsNeededResult(leads=None, probability=p, feasible=False, message=msg, monthly_leads=None,
                                 scale=None, problem=prob, curve_upto=max(common["naive_leads"] or 0, 10), **common)
    monthly = prob.plan(leads)[0].astype(np.int64)
    scale = float(leads) if prob.constant else float(leads / np.asarray(profile, float)[:T].sum())
    per = "per month" if prob.constant else "in total over months 1-" + str(T)
    msg = f"{leads} new leads {per} reach {what} with P={p:.2f} ({alone} gives P={p0:.2f})"
    return LeadsNeededResult(leads=int(leads), probability=p, feasible=True, message=msg, problem=prob,
                             curve_upto=2 * leads, monthly_leads=monthly, scale=scale, **common)


def _solve(post: PosteriorFunnel, prob: PlanProblem, target: float, target_unit: str, confidence: float,
           max_leads: int, profile: Sequence[float] | None, has_baseline: bool) -> LeadsNeededResult:
    """The answer of :func:`leads_needed` once its problem is set up."""
    a, T = prob.window
    amount = f"{target:g} wins" if target_unit == "wins" else f"{target:,.0f} in revenue"
    what = f"{amount} in months {a}-{T}" if a > 1 else f"{amount} by month {T}"
    p_pipe = float(np.mean(prob.pipeline_need <= 0))
    p0 = float(np.mean(prob.need <= 0))                      # P(hit) without planned leads
    naive, naive_p, rate = _naive_plan(post, prob, target, target_unit)
    common = dict(naive_leads=naive, naive_probability=naive_p, naive_rate=rate, pipeline_probability=p_pipe,
                  target=target, target_unit=target_unit, window=(a, T), confidence=confidence,
                  min_months_to_win=prob.min_months_to_win, expected_pipeline_wins=prob.expected_pipeline_wins,
                  baseline_probability=p0 if has_baseline else float("nan"),
                  meta={"sims": int(prob.idx.size), "constant": prob.constant})
    alone = "the pipeline and the baseline inflow" if has_baseline else "the current pipeline alone"
    if p0 >= confidence:
        return LeadsNeededResult(leads=0, probability=p0, feasible=True, problem=prob,
                                 message=f"{alone} reaches {what} with P={p0:.2f} >= {confidence:g}: "
                                         "no new leads are needed", curve_upto=max(naive or 0, 10),
                                 monthly_leads=np.zeros(T, dtype=np.int64), scale=0.0, **common)
    sup = prob.upper_bound()
    if sup < confidence:
        msg = f"no number of new leads can reach {what}: {_why_infeasible(prob, sup)}; {alone} gives P={p0:.2f}"
        return LeadsNeededResult(leads=None, probability=sup, feasible=False, message=msg, problem=prob,
                                 curve_upto=max(naive or 0, 10), monthly_leads=None, scale=None, **common)
    return _answer(prob, confidence, what, p0, max_leads, profile, common)


def leads_needed(
    post: PosteriorFunnel,
    target: float,
    window: int | tuple[int, int],
    *,
    pipeline: PipelineLike = None,
    confidence: float = 0.8,
    profile: Sequence[float] | None = None,
    target_unit: str = "wins",
    seed: SeedLike = 0,
    max_leads: int = 1_000_000,
    sims_per_draw: int | None = None,
    start: object | None = None,
    baseline: np.ndarray | None = None,
    sims: PlanSims | None = None,
) -> LeadsNeededResult:
    """Smallest number of new leads per month that hits a target with a given confidence.

    Parameters
    ----------
    post : PosteriorFunnel
        Posterior of the segment (pass a segment's posterior to plan for it).
    target : float
        Wins (or revenue, see ``target_unit``) wanted inside the window.
    window : int or (first_month, last_month)
        Forecast months 1..H after the cut-off month in which the target counts; an int
        ``T`` means ``(1, T)``. New leads are planned for months 1..last_month.
    pipeline : DataFrame, mapping, Series or None
        Open pipeline at the cut-off, by age (see :func:`forecast`); its wins inside the
        window count toward the target.
    confidence : float
        Required P(wins in window >= target), strictly between 0 and 1.
    profile : sequence of float, optional
        Monthly shape of the plan: leads in month m = round(s * profile[m]) for
        m = 1..last_month; the answer is then a total (see :class:`LeadsNeededResult`).
    target_unit : {"wins", "revenue"}
        Revenue targets become per-draw win targets ``ceil(target / deal_value_d)``.
    seed : int or Generator
        Seed of the month shocks and the pipeline simulation; same seed, same answer.
    max_leads : int
        Largest number of new leads in any one month considered.
    sims_per_draw : int, optional
        Pipeline simulations per posterior draw (default: enough for 2000 in total).
    start : date-like, optional
        The cut-off month (needed for a seasonal posterior).
    baseline : ndarray (draws, >= last_month), optional
        Inflow draws of the new leads that come anyway (from a count model); each
        simulation takes one. The plan is then the leads to add on top, and the result's
        ``baseline_probability`` is P(hit) with this uncertain inflow and no plan.
    sims : PlanSims, optional
        :func:`plan_sims` of this ``post`` and ``window`` (with the pipeline, seed,
        sims_per_draw, start and baseline it was given, which are then not read again):
        several targets or confidences share one simulation, with the same answers.

    Returns
    -------
    LeadsNeededResult
        ``feasible=False`` and ``leads=None`` when no plan up to ``max_leads`` reaches
        the confidence (e.g. the window is shorter than the fastest path to a win).

    Raises
    ------
    SimulationError
        Negative target, confidence outside (0, 1), windows in the past, unknown stage
        codes, revenue targets without deal values, a seasonal posterior without ``start``.
    """
    if not (isinstance(confidence, (float, int)) and 0.0 < float(confidence) < 1.0):
        raise SimulationError(f"confidence must lie strictly between 0 and 1 (e.g. 0.8), got {confidence!r}")
    confidence = float(confidence)
    prob = plan_problem(post, target, window, pipeline=pipeline, profile=profile, target_unit=target_unit,
                        seed=seed, max_leads=max_leads, sims_per_draw=sims_per_draw, start=start,
                        baseline=baseline, sims=sims)
    has_baseline = baseline is not None if sims is None else sims.has_baseline
    return _solve(post, prob, float(target), target_unit, confidence, max_leads, profile, has_baseline)
