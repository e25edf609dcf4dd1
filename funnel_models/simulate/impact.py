"""Impact of a process change at one stage, from the posteriors before and after it.

The model supplies two :class:`PosteriorFunnel` objects with the same draws: the month
before the change and the month after. Draws are paired by index, so the uplift
``after - before`` carries the posterior correlation between the two rates.

The extra wins isolate the change at ``stage``: the ``before`` funnel with only that
stage's rates (every age) replaced by ``after``'s, versus ``before`` unchanged (exact
expected wins per draw over the average months, from the pipeline by age and the new
leads).

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> truth = demo_data(months=6, leads_per_month=50).truth
>>> res = process_change_impact(truth.posterior(month="2024-06-01"), truth.posterior(month="2025-06-01"),
...                             "DEMO", new_leads=100)
>>> res.p_improved
1.0
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..intervals import check_levels, interval_table
from ..posterior import PosteriorFunnel
from .core import LeadsLike, PipelineLike, expected_inputs, expected_run

__all__ = ["ImpactResult", "process_change_impact"]


@dataclass(frozen=True)
class ImpactResult:
    """Effect of a process change at one stage.

    Attributes
    ----------
    stage : str
    rate_before, rate_after : ndarray (draws,)
        Stage conversion (:meth:`PosteriorFunnel.conversion`) before and after.
    uplift : ndarray (draws,)
        ``rate_after - rate_before``, paired by draw.
    p_improved : float
        Posterior probability that the conversion rose.
    extra_wins : ndarray (draws, H)
        Exact expected extra wins per month ahead from the change at ``stage``.
    """

    stage: str
    rate_before: np.ndarray
    rate_after: np.ndarray
    uplift: np.ndarray
    p_improved: float
    extra_wins: np.ndarray

    @property
    def extra_wins_per_month(self) -> np.ndarray:
        """Mean extra wins per month over the horizon, per draw (draws,)."""
        return self.extra_wins.mean(axis=1)

    def table(self, levels: Sequence[float] = (0.8,)) -> pd.DataFrame:
        """Summary: ``quantity, mean, sd, lo_.., hi_..`` for the rates, uplift and extra wins."""
        check_levels(levels)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(self.rate_before > 0, self.uplift / self.rate_before, np.nan)
        cols = {"rate_before": self.rate_before, "rate_after": self.rate_after, "uplift": self.uplift,
                "relative_uplift": rel, "extra_wins_per_month": self.extra_wins_per_month}
        d = np.column_stack(list(cols.values()))
        out = interval_table(d, levels, index=list(cols), name="quantity")
        out["p_positive"] = (d > 0).mean(0)
        return out


def process_change_impact(
    before: PosteriorFunnel,
    after: PosteriorFunnel,
    stage: str,
    *,
    new_leads: LeadsLike,
    horizon: int = 6,
    pipeline: PipelineLike = None,
    start: object | None = None,
) -> ImpactResult:
    """Conversion before vs after a process change at ``stage`` and the wins it adds.

    Parameters
    ----------
    before, after : PosteriorFunnel
        Posteriors for the month before and after the change, with the same stages and
        the same number of draws (paired by index).
    stage : str
        Open stage code where the process changed.
    new_leads : float or sequence of float
        New leads per month over the horizon.
    horizon : int
        Months ahead for the extra wins.
    pipeline : optional
        Open pipeline (as in :func:`forecast`); its deals also benefit from the change.
    start : date-like, optional
        The cut-off month (needed for a seasonal posterior).

    Returns
    -------
    ImpactResult
    """
    if tuple(before.stages) != tuple(after.stages):
        raise SimulationError(f"before and after have different stages ({list(before.stages)} vs "
                              f"{list(after.stages)}); pass posteriors of the same funnel")
    if before.n_draws != after.n_draws:
        raise SimulationError(f"before has {before.n_draws} draws and after {after.n_draws}; the uplift pairs "
                              "draws by index, so pass posteriors with the same draws (same fit, two months)")
    if before.n_ages != after.n_ages:
        raise SimulationError(f"before has {before.n_ages} ages in stage and after {after.n_ages}; pass "
                              "posteriors of the same model (same age buckets)")
    k = before.stage_index(stage)
    _, x0, leads, months = expected_inputs(before, pipeline, new_leads, horizon, start)
    rb = before.conversion()[:, k]
    ra = after.conversion()[:, k]
    up = ra - rb
    mixed = before.rates.copy()
    mixed[:, k] = after.rates[:, k]
    K = before.n_stages
    e0, _, _ = expected_run(before, x0, leads, months)
    e1, _, _ = expected_run(replace(before, rates=mixed), x0, leads, months)
    return ImpactResult(stage=stage, rate_before=rb, rate_after=ra, uplift=up, p_improved=float(np.mean(up > 0)),
                        extra_wins=e1[..., K] - e0[..., K])
