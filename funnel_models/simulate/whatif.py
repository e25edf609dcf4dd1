"""What-if scenarios: better conversion, shorter stalls, more leads, compared with the base.

The scenario posterior is ``post.adjust(conversion=..., stall=...)`` (same draws, so
every comparison is paired by draw) and its new leads are ``new_leads * lead_multiplier``.
Base and scenario futures are simulated with the same seed (common random numbers): the
engine gives every month and source stage its own random stream, so draws are identical
wherever the two funnels agree (e.g. wins in months the change cannot reach yet) and only
partially coupled downstream of a changed stage (binomial samplers do not couple
monotonically). The exact expected change per draw, free of lead-level noise, is
reported next to the simulated one.
Per-segment what-ifs: pass that segment's :class:`PosteriorFunnel` and pipeline.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> post = demo_data(months=6, leads_per_month=50).truth.posterior()
>>> res = what_if(post, conversion={"DEMO": 1.2}, pipeline={"DEMO": 50}, new_leads=0, horizon=3,
...               sims_per_draw=100)
>>> bool(res.expected_change.sum(axis=1).mean() > 0)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..intervals import INTERVAL_LEVELS, interval_table
from ..posterior import PosteriorFunnel
from .core import LeadsLike, PipelineLike, SeedLike, check_horizon, new_leads_vector
from .forecast import ForecastResult, check_window, forecast
from .planning import LeadsNeededResult, leads_needed

__all__ = ["WhatIfResult", "what_if"]


@dataclass(frozen=True)
class WhatIfResult:
    """Base versus scenario.

    Attributes
    ----------
    base, scenario : ForecastResult
        Simulated futures (same seed).
    wins_change : ndarray (sims, H)
        Scenario minus base wins per simulated future and month (common random numbers).
    expected_change : ndarray (draws, H)
        Exact expected change in wins per posterior draw and month.
    leads_base, leads_scenario : LeadsNeededResult or None
        Leads needed for ``target`` without and with the adjustments (the lead
        multiplier does not enter: it is the answer's unit).
    p_hit_base, p_hit_scenario : float
        Share of simulated futures hitting ``target`` in ``window`` with the planned
        leads (NaN without a target).
    """

    base: ForecastResult
    scenario: ForecastResult
    wins_change: np.ndarray
    expected_change: np.ndarray
    leads_base: LeadsNeededResult | None
    leads_scenario: LeadsNeededResult | None
    p_hit_base: float
    p_hit_scenario: float
    window: tuple[int, int] | None
    target: float | None

    def intervals(self, levels: Sequence[float] = INTERVAL_LEVELS) -> pd.DataFrame:
        """Change in wins per month and in total: ``month, quantity, mean, sd, lo_.., hi_..``.

        ``wins_change`` is simulated (parameter and lead-level randomness);
        ``expected_wins_change`` is the exact expectation per draw (parameter uncertainty only).
        """
        months = list(self.base.months) + ["total"]
        sim = np.column_stack([self.wins_change, self.wins_change.sum(1)])
        exp = np.column_stack([self.expected_change, self.expected_change.sum(1)])
        a = interval_table(sim, levels, index=months, name="month")
        a.insert(1, "quantity", "wins_change")
        b = interval_table(exp, levels, index=months, name="month")
        b.insert(1, "quantity", "expected_wins_change")
        return pd.concat([a, b], ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per metric with ``base``, ``scenario`` and ``change`` columns."""
        rows = [("expected wins over the horizon", float(self.base.expected_wins.sum(1).mean()),
                 float(self.scenario.expected_wins.sum(1).mean()))]
        if self.target is not None:
            rows.append(("P(hit target with planned leads)", self.p_hit_base, self.p_hit_scenario))
        if self.leads_base is not None and self.leads_scenario is not None:
            lb = self.leads_base.leads
            ls = self.leads_scenario.leads
            rows.append(("leads needed", float("nan") if lb is None else float(lb),
                         float("nan") if ls is None else float(ls)))
        out = pd.DataFrame(rows, columns=["metric", "base", "scenario"])
        out["change"] = out["scenario"] - out["base"]
        return out


def what_if(
    post: PosteriorFunnel,
    *,
    conversion: Mapping[str, float] | None = None,
    stall: Mapping[str, float] | None = None,
    lead_multiplier: float = 1.0,
    pipeline: PipelineLike = None,
    new_leads: LeadsLike,
    horizon: int = 6,
    target: float | None = None,
    window: int | tuple[int, int] | None = None,
    confidence: float = 0.8,
    target_unit: str = "wins",
    seed: SeedLike = 0,
    sims_per_draw: int | None = None,
    start: object | None = None,
) -> WhatIfResult:
    """Compare a scenario (adjusted conversion / stall / lead volume) with the base forecast.

    Parameters
    ----------
    post : PosteriorFunnel
        Base posterior (a segment's posterior for a per-segment what-if).
    conversion, stall : mapping stage -> multiplier, optional
        Passed to :meth:`PosteriorFunnel.adjust` (``{"DEMO": 1.1}``: +10% conversion at
        DEMO; ``{"SQL": 0.5}``: half the expected months in SQL).
    lead_multiplier : float
        Scenario new leads are ``new_leads * lead_multiplier`` (rounded per month).
    pipeline, new_leads, horizon, seed, sims_per_draw, start
        As in :func:`forecast` (new leads may be inflow draws); the same seed drives
        both futures, so they share month shocks, inflow paths and lead-level draws
        wherever their parameters agree.
    target, window, confidence, target_unit
        Optional plan question: P(hit) with the planned leads and leads needed, base
        versus scenario. ``window`` defaults to ``(1, horizon)``.

    Returns
    -------
    WhatIfResult
    """
    H = check_horizon(horizon)
    if not np.isfinite(lead_multiplier) or lead_multiplier < 0:
        raise SimulationError(f"lead_multiplier must be a finite number >= 0, got {lead_multiplier!r}")
    leads = new_leads_vector(new_leads, H)
    scen_post = post.adjust(conversion=conversion, stall=stall)
    base = forecast(post, pipeline, leads, H, seed=seed, sims_per_draw=sims_per_draw, start=start)
    scen = forecast(scen_post, pipeline, leads * lead_multiplier, H, seed=seed, sims_per_draw=sims_per_draw,
                    start=start)
    change = scen.wins - base.wins
    exp_change = scen.expected_wins - base.expected_wins
    lb = ls = None
    p_b = p_s = float("nan")
    win: tuple[int, int] | None = None
    if target is not None:
        win = check_window(window if window is not None else H, H)
        if target_unit == "wins":
            p_b = base.probability_at_least(target, win)
            p_s = scen.probability_at_least(target, win)
        else:
            p_b = float(np.mean(base.revenue[:, win[0] - 1:win[1]].sum(1) >= target))
            p_s = float(np.mean(scen.revenue[:, win[0] - 1:win[1]].sum(1) >= target))
        lb = leads_needed(post, target, win, pipeline=pipeline, confidence=confidence,
                          target_unit=target_unit, seed=seed, start=start)
        ls = leads_needed(scen_post, target, win, pipeline=pipeline, confidence=confidence,
                          target_unit=target_unit, seed=seed, start=start)
    elif window is not None:
        raise SimulationError("window was given without target; pass target= to ask a plan question")
    return WhatIfResult(base=base, scenario=scen, wins_change=change, expected_change=exp_change,
                        leads_base=lb, leads_scenario=ls, p_hit_base=p_b, p_hit_scenario=p_s,
                        window=win, target=target)
