"""Monte Carlo forecast of entries, wins and revenue from the pipeline and new leads.

Every posterior draw drives one (or more) simulated futures with real multinomial moves
and fresh month shocks (see :mod:`funnel_models.simulate.core` for the semantics), so the
intervals combine parameter uncertainty, month-to-month variation, the randomness of
individual leads and, with inflow draws, the uncertainty of the inflow.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> fc = forecast(post, {"NEGO": 20}, new_leads=0, horizon=2, seed=1, sims_per_draw=200)
>>> fc.wins.shape
(200, 2)
>>> default_target(post, {"NEGO": 20}, 0, 2) >= 1
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.spec import ENTRY
from ..errors import SimulationError
from ..intervals import INTERVAL_LEVELS, interval_table
from ..posterior import PosteriorFunnel
from .core import (LeadsLike, PipelineLike, SeedLike, check_horizon, expected_inputs, expected_run, forecast_months,
                   make_rng, new_leads_vector, pipeline_state, round_leads, sampled_run, season_months,
                   simulation_draws)

__all__ = ["ForecastResult", "forecast", "leads_from_history", "check_window", "expected_wins", "default_target"]

#: Default minimum number of simulated futures when ``sims_per_draw`` is automatic.
MIN_FORECAST_SIMS = 1000
#: Default target = ceil(TARGET_STRETCH x expected wins in the window at the recent lead volume).
TARGET_STRETCH = 1.1


def check_window(window: int | tuple[int, int] | Sequence[int], horizon: int | None = None) -> tuple[int, int]:
    """Validate a window of forecast months: ``(first, last)`` or ``last`` meaning ``(1, last)``."""
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool):
        first, last = 1, int(window)
    else:
        try:
            first, last = (int(w) for w in window)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise SimulationError(f"window must be (first_month, last_month) in forecast months 1..H, "
                                  f"or an int meaning (1, int); got {window!r}") from None
    if first < 1:
        raise SimulationError(f"window {window!r} starts in month {first}: forecast months are 1..H "
                              "after the cut-off month, the past cannot be planned. Use first_month >= 1.")
    if last < first:
        raise SimulationError(f"window {window!r} ends (month {last}) before it starts (month {first}); "
                              "pass (first_month, last_month) with last_month >= first_month.")
    if horizon is not None and last > horizon:
        raise SimulationError(f"window {window!r} ends in month {last}, after the forecast horizon "
                              f"{horizon}; raise horizon to at least {last}.")
    return first, last


@dataclass(frozen=True)
class ForecastResult:
    """Simulated futures of the funnel.

    Attributes
    ----------
    states : tuple of str
        ``[open stages..., WON, LOST]``.
    entries : ndarray (sims, H, K+2)
        Leads arriving in each state during each forecast month (moves from another state
        plus new leads landing there; a lead passing through a stage within one month is
        not seen, as in monthly snapshots).
    wins : ndarray (sims, H)
        Wins per month (``entries[..., WON]``).
    revenue : ndarray (sims, H)
        ``wins`` times the draw's deal value (NaN when deal values are unknown).
    open : ndarray (sims, H, K+2)
        Leads in each open stage (all ages) at each month end; WON / LOST hold the
        cumulative closed.
    expected : ndarray (draws, H, K+2)
        Exact expected entries per posterior draw over the average months (seasonal
        offsets, no month shocks; the mean inflow), without Monte Carlo noise.
    months : Index
        Month starts (``start`` given) or ``1..H``.
    draw_index : ndarray (sims,)
        Posterior draw behind each simulated future.
    new_leads : ndarray (H,)
        Whole planned new leads per month, or the mean simulated inflow per month.
    pipeline : ndarray (K+2,)
        Open pipeline counts per stage at the cut-off (all ages).
    meta : dict
        ``sims_per_draw``, ``inflow`` (True when inflow draws were simulated) and
        ``pipeline_mean_age_months`` (stage -> mean age) when the pipeline frame has an
        ``age_months`` column.
    pipeline_by_age : ndarray (K, A)
        Open pipeline by stage and chain age, as simulated.
    inflow : ndarray (sims, H) or None
        The whole new leads of each simulated future when inflow draws were given.
    """

    states: tuple[str, ...]
    entries: np.ndarray
    wins: np.ndarray
    revenue: np.ndarray
    open: np.ndarray
    expected: np.ndarray
    months: pd.Index
    draw_index: np.ndarray
    new_leads: np.ndarray
    pipeline: np.ndarray
    label: str = "all"
    meta: dict = field(default_factory=dict)
    pipeline_by_age: np.ndarray | None = None
    inflow: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        """Number of forecast months."""
        return int(self.wins.shape[1])

    @property
    def n_sims(self) -> int:
        """Number of simulated futures."""
        return int(self.wins.shape[0])

    @property
    def expected_wins(self) -> np.ndarray:
        """Exact expected wins per posterior draw and month, (draws, H)."""
        return self.expected[..., len(self.states) - 2]

    def window_wins(self, window: int | tuple[int, int]) -> np.ndarray:
        """Total wins in a window of forecast months, per simulated future (sims,)."""
        first, last = check_window(window, self.horizon)
        return self.wins[:, first - 1:last].sum(axis=1)

    def probability_at_least(self, target: float, window: int | tuple[int, int]) -> float:
        """Share of simulated futures with at least ``target`` wins in ``window``."""
        return float(np.mean(self.window_wins(window) >= target))

    def intervals(self, levels: Sequence[float] = INTERVAL_LEVELS) -> pd.DataFrame:
        """Tidy summary: one row per month and quantity.

        Quantities: ``wins``, ``cumulative_wins``, ``revenue`` (when deal values are
        known), ``entries_<STATE>`` for every state and ``open_<STAGE>`` for every open
        stage.

        Returns
        -------
        DataFrame
            ``month, quantity, mean, sd, lo_50, hi_50, lo_80, hi_80, ...``.
        """
        K = len(self.states) - 2
        series: dict[str, np.ndarray] = {"wins": self.wins, "cumulative_wins": np.cumsum(self.wins, axis=1)}
        if np.all(np.isfinite(self.revenue)):
            series["revenue"] = self.revenue
        for i, s in enumerate(self.states):
            series[f"entries_{s}"] = self.entries[..., i]
        for i, s in enumerate(self.states[:K]):
            series[f"open_{s}"] = self.open[..., i]
        frames = []
        for name, d in series.items():
            f = interval_table(d, levels, index=self.months, name="month")
            f.insert(1, "quantity", name)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)


def expected_wins(post: PosteriorFunnel, pipeline: PipelineLike, new_leads: LeadsLike, horizon: int, *,
                  start: object | None = None) -> np.ndarray:
    """Exact expected wins per draw and month, (draws, H), without simulation.

    The pipeline enters by age; months are the average months (seasonal offsets of the
    calendar months after ``start``, no shocks); inflow draws (n, H) count by their mean.
    """
    _, x0, leads, months = expected_inputs(post, pipeline, new_leads, horizon, start)
    ent, _, _ = expected_run(post, x0, leads, months)
    return ent[..., post.n_stages]


def default_target(post: PosteriorFunnel, pipeline: PipelineLike, new_leads: LeadsLike,
                   window: int | tuple[int, int], *, start: object | None = None) -> float:
    """The win target used when a parameter file leaves it out.

    ``ceil(1.1 x expected wins in the window)`` (posterior mean of :func:`expected_wins`
    from the open pipeline and ``new_leads``, normally the recent lead volume from
    :func:`leads_from_history`), and at least 1: a target a little above what the funnel
    is expected to deliver, so the plan asks for slightly more than the status quo.
    Reports and the dashboard both use it.

    Parameters
    ----------
    post, pipeline, new_leads, start
        As in :func:`forecast`.
    window : int or (first_month, last_month)
        Forecast months in which the target counts (an int ``T`` means ``(1, T)``).

    Returns
    -------
    float
        A whole number of wins >= 1.
    """
    first, last = check_window(window)
    wins = expected_wins(post, pipeline, new_leads if np.ndim(new_leads) == 0 else
                         np.asarray(new_leads, float)[..., :last], last, start=start)
    expected = float(wins[:, first - 1:last].sum(axis=1).mean())
    return float(max(1, math.ceil(TARGET_STRETCH * expected - 1e-9)))


def _simulated_leads(new_leads: np.ndarray, n_sims: int, rng: np.random.Generator) -> np.ndarray:
    """Whole new leads per simulated future, (n_sims, H): the plan for every future, or one
    inflow draw per future (resampled with ``rng``)."""
    if new_leads.ndim == 1:
        return np.broadcast_to(round_leads(new_leads), (n_sims, new_leads.size))
    rows = rng.integers(0, new_leads.shape[0], n_sims)
    return round_leads(new_leads[rows])


def forecast(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    new_leads: LeadsLike,
    horizon: int = 6,
    *,
    seed: SeedLike = 0,
    start: object | None = None,
    sims_per_draw: int | None = None,
    shock_seed: SeedLike | None = None,
) -> ForecastResult:
    """Simulate the next ``horizon`` months of the funnel.

    Parameters
    ----------
    post : PosteriorFunnel
        Posterior of the segment to forecast (pass a segment's posterior to forecast it).
    pipeline : DataFrame, mapping, Series or None
        The open pipeline at the cut-off (:func:`~funnel_models.simulate.core.pipeline_state`):
        a frame from :func:`funnel_models.data.derive.open_pipeline` enters with each
        lead's age; counts without ages are taken as just arrived (age 0).
    new_leads : float, sequence of float, or ndarray (n, horizon)
        Either a plan: new leads per month, one number for every month or one per
        forecast month, taken as given (rounded to whole leads); or inflow draws from a
        count model of new leads: each simulated future gets one row (resampled with the
        seeded generator), so the intervals carry the inflow's uncertainty. See
        :func:`leads_from_history` for the recent volume.
    horizon : int
        Forecast months ``1..horizon`` after the cut-off month.
    seed : int or Generator
        Seed of the local ``np.random.default_rng``; same seed, same futures.
    start : date-like, optional
        The cut-off month; when given, ``months`` are the following month starts and a
        seasonal posterior uses their calendar months (required when ``post.season`` is set).
    sims_per_draw : int, optional
        Futures simulated per posterior draw. Default: 1, or enough for at least
        1000 futures when the posterior has fewer draws (e.g. a known-truth posterior).
    shock_seed : int or Generator, optional
        Seed of the month shocks alone (default: drawn from ``seed``). Forecasts of the
        segment cells that add up to one total pass the same one (and posteriors whose
        draws are paired by index), so a month shock moves every cell alike, as the
        model has it, while their leads move independently.

    Returns
    -------
    ForecastResult

    Raises
    ------
    SimulationError
        Bad horizon, pipeline or leads, a seasonal posterior without ``start``, or nothing
        to forecast (empty pipeline and no new leads).
    """
    H = check_horizon(horizon)
    x0 = pipeline_state(post, pipeline)
    leads = new_leads_vector(new_leads, H)
    if x0.sum() == 0 and round_leads(leads).sum() == 0:
        raise SimulationError("nothing to forecast: the pipeline is empty and new_leads is 0 in every "
                              "month; pass the open pipeline (derive.open_pipeline) or new_leads > 0.")
    months = season_months(post, start, H)
    idx = simulation_draws(post.n_draws, sims_per_draw, MIN_FORECAST_SIMS)
    lead_rng, run_rng = make_rng(seed).spawn(2)
    sim_leads = _simulated_leads(leads, idx.size, lead_rng)
    entries, opened, _ = sampled_run(post if idx.size == post.n_draws else post.take(idx), x0, sim_leads, months,
                                     run_rng, shocks=None if shock_seed is None else make_rng(shock_seed))
    plan = round_leads(leads) if leads.ndim == 1 else sim_leads.mean(axis=0)
    exp_entries, _, _ = expected_run(post, x0, plan.astype(float), months)
    K = post.n_stages
    wins = entries[..., K]
    meta: dict = {"sims_per_draw": idx.size // post.n_draws, "inflow": leads.ndim == 2}
    if isinstance(pipeline, pd.DataFrame) and "age_months" in pipeline.columns:
        age = pd.to_numeric(pipeline["age_months"], errors="coerce").groupby(pipeline["stage"].astype(str)).mean()
        meta["pipeline_mean_age_months"] = {s: float(age[s]) for s in post.stages if s in age.index}
    return ForecastResult(states=post.states, entries=entries, wins=wins,
                          revenue=wins * post.deal_value[idx][:, None], open=opened, expected=exp_entries,
                          months=forecast_months(start, H), draw_index=idx, new_leads=plan,
                          pipeline=np.append(x0.sum(1), [0.0, 0.0]), label=post.label, meta=meta,
                          pipeline_by_age=x0, inflow=sim_leads if leads.ndim == 2 else None)


def leads_from_history(transitions: pd.DataFrame, months: int = 3) -> float:
    """Mean monthly count of new leads over the last ``months`` months of a transitions table.

    Parameters
    ----------
    transitions : DataFrame
        From :func:`funnel_models.data.derive.transitions` (``month, from_stage, to_stage, n``);
        new leads are the rows with ``from_stage == "ENTRY"``.
    months : int
        Number of calendar months, ending at the table's latest month (months without
        any entry count as 0).

    Returns
    -------
    float
    """
    need = {"month", "from_stage", "n"}
    if not isinstance(transitions, pd.DataFrame) or not need <= set(transitions.columns):
        cols = list(transitions.columns) if isinstance(transitions, pd.DataFrame) else type(transitions).__name__
        raise SimulationError(f"transitions must be a DataFrame from derive.transitions with columns "
                              f"{sorted(need)}; got {cols}")
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise SimulationError(f"months must be an int >= 1, got {months!r}")
    ent = transitions[transitions["from_stage"].astype(str) == ENTRY]
    if ent.empty:
        raise SimulationError("transitions has no rows with from_stage == 'ENTRY' (new leads); "
                              "build it with derive.transitions from snapshots that include lead entries.")
    month = pd.to_datetime(transitions["month"]).dt.to_period("M")
    last = month.max()
    per_month = ent.groupby(month.loc[ent.index])["n"].sum()
    wanted = pd.period_range(end=last, periods=int(months), freq="M")
    return float(per_month.reindex(wanted, fill_value=0).mean())
