"""Monte Carlo forecast of entries, wins and revenue from the pipeline and planned leads.

Every posterior draw drives one (or more) simulated futures with real multinomial moves
(see :mod:`funnel_models.simulate.core` for the chain's semantics), so the intervals
combine parameter uncertainty and the randomness of individual leads.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> fc = forecast(post, {"NEGO": 20}, new_leads=0, horizon=2, seed=1, sims_per_draw=200)
>>> fc.wins.shape
(200, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..posterior import INTERVAL_LEVELS, PosteriorFunnel
from ..data.spec import ENTRY
from .core import (LeadsLike, PipelineLike, SeedLike, check_horizon, expected_chain, forecast_months,
                   intervals, make_rng, new_leads_vector, pipeline_counts, round_leads, simulate_chain,
                   sims_for)

__all__ = ["ForecastResult", "forecast", "leads_from_history", "check_window", "expected_wins"]

#: Default minimum number of simulated futures when ``sims_per_draw`` is automatic.
MIN_FORECAST_SIMS = 1000


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
        Leads in each open stage at each month end; WON / LOST hold the cumulative closed.
    expected : ndarray (draws, H, K+2)
        Exact expected entries per posterior draw (no Monte Carlo noise).
    months : Index
        Month starts (``start`` given) or ``1..H``.
    draw_index : ndarray (sims,)
        Posterior draw behind each simulated future.
    new_leads : ndarray (H,)
        Whole new leads entering each month (as simulated).
    pipeline : ndarray (K+2,)
        Open pipeline counts at the cut-off.
    meta : dict
        ``sims_per_draw``, and ``pipeline_mean_age_months`` (stage -> mean age) when the
        pipeline frame has an ``age_months`` column: reported, not used by the chain.
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
            f = intervals(d, levels, index=self.months, name="month")
            f.insert(1, "quantity", name)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)


def expected_wins(post: PosteriorFunnel, pipeline: PipelineLike, new_leads: LeadsLike, horizon: int) -> np.ndarray:
    """Exact expected wins per draw and month, (draws, H), without simulation."""
    H = check_horizon(horizon)
    x0 = pipeline_counts(post, pipeline, integer=False)
    leads = new_leads_vector(new_leads, H)
    ent, _ = expected_chain(post.P, post.entry, x0, leads, H)
    return ent[..., post.n_stages]


def forecast(
    post: PosteriorFunnel,
    pipeline: PipelineLike,
    new_leads: LeadsLike,
    horizon: int = 6,
    *,
    seed: SeedLike = 0,
    start: object | None = None,
    sims_per_draw: int | None = None,
) -> ForecastResult:
    """Simulate the next ``horizon`` months of the funnel.

    Parameters
    ----------
    post : PosteriorFunnel
        Posterior of the segment to forecast (pass a segment's posterior to forecast it).
    pipeline : DataFrame, mapping, Series or None
        The open pipeline at the cut-off: a frame from
        :func:`funnel_models.data.derive.open_pipeline` (counted by ``stage``; the
        ``age_months`` column is accepted but not used, the chain being memoryless), a
        mapping / Series stage -> count, or ``None`` for no open leads.
    new_leads : float or sequence of float
        Planned new leads per month: one number for every month or one per forecast
        month. Plans are taken as given (rounded to whole leads), not Poisson draws;
        see :func:`leads_from_history` for the recent volume.
    horizon : int
        Forecast months ``1..horizon`` after the cut-off month.
    seed : int or Generator
        Seed of the local ``np.random.default_rng``; same seed, same futures.
    start : date-like, optional
        The cut-off month; when given, ``months`` are the following month starts.
    sims_per_draw : int, optional
        Futures simulated per posterior draw. Default: 1, or enough for at least
        1000 futures when the posterior has fewer draws (e.g. a known-truth posterior).

    Returns
    -------
    ForecastResult

    Raises
    ------
    SimulationError
        Bad horizon, pipeline or leads, or nothing to forecast (empty pipeline and no
        new leads).
    """
    H = check_horizon(horizon)
    x0 = pipeline_counts(post, pipeline)
    leads = round_leads(new_leads_vector(new_leads, H))
    if x0.sum() == 0 and leads.sum() == 0:
        raise SimulationError("nothing to forecast: the pipeline is empty and new_leads is 0 in every "
                              "month; pass the open pipeline (derive.open_pipeline) or new_leads > 0.")
    months = forecast_months(start, H)
    reps = sims_for(post.n_draws, sims_per_draw, MIN_FORECAST_SIMS)
    idx = np.repeat(np.arange(post.n_draws), reps)
    rng = make_rng(seed)
    entries, state = simulate_chain(post.P[idx], post.entry[idx], x0, leads, H, rng)
    exp_entries, _ = expected_chain(post.P, post.entry, x0, leads.astype(float), H)
    K = post.n_stages
    wins = entries[..., K]
    revenue = wins * post.deal_value[idx][:, None]
    meta: dict = {"sims_per_draw": reps}
    if isinstance(pipeline, pd.DataFrame) and "age_months" in pipeline.columns:
        # reported for context only: the chain is memoryless, age does not change the forecast
        age = pd.to_numeric(pipeline["age_months"], errors="coerce").groupby(pipeline["stage"].astype(str)).mean()
        meta["pipeline_mean_age_months"] = {s: float(age[s]) for s in post.stages if s in age.index}
    return ForecastResult(states=post.states, entries=entries, wins=wins, revenue=revenue, open=state,
                          expected=exp_entries, months=months, draw_index=idx, new_leads=leads,
                          pipeline=x0, label=post.label, meta=meta)


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
