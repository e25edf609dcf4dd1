"""The dashboard's answers: control values -> simulator calls, cached by their arguments.

:class:`WhatIfEngine` knows nothing about widgets. A :class:`Question` (the values of the
controls) maps to simulator calls:

=====================================  =================================================
answer                                 simulator call
=====================================  =================================================
leads needed, spreadsheet plan         ``simulate.leads_needed(post, target, window,
                                       confidence=, target_unit=, sims=)`` with
                                       ``sims = simulate.plan_sims(post, window,
                                       pipeline=, seed=, start=cut-off month)``
P(hit) with the planned leads, curve   ``plan.problem.probability(leads)``: the
                                       computation behind the answer, so the planned
                                       point lies on the curve
forecast fan chart                     ``simulate.forecast(post.thin(forecast_draws),
                                       pipeline, leads, window, sims_per_draw=1)``
where to act                           ``simulate.leverage(post.thin(leverage_draws), ...)``
months from lead to win                ``post.typical_months_to_win()``
=====================================  =================================================

where ``post = model.posterior_funnel(segment, draws=draws).adjust(conversion=, stall=)``.
Every result is cached by its own arguments, so a control change reruns only the calls
whose arguments changed (the planned leads never rerun the leads-needed search; the
target never reruns the forecast). The open pipeline enters as the array of counts by
(stage, chain age) that :func:`funnel_models.simulate.pipeline_state` makes of the
per-lead frame, computed once per segment.

A segment's planned leads are the company's scaled by the segment's recent share of new
leads (:meth:`WhatIfEngine.lead_share`); its target is the same rule applied to the
segment (:meth:`WhatIfEngine.segment_target`).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .. import simulate as S
from ..charts.flows import FlowTable, flow_table
from ..data import derive
from ..errors import ParameterError
from ..posterior import PosteriorFunnel

__all__ = ["Question", "Answer", "WhatIfEngine", "FAN_LEVELS", "CURVE_POINTS", "ANSWER_CACHES", "curve_domain",
           "nice_ceil"]

#: Interval levels of the fan chart (innermost first).
FAN_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)
#: Points of the P(hit) curve (plus the answer itself).
CURVE_POINTS = 21
#: Months of wins counted for a segment's share of the wins.
WIN_SHARE_MONTHS = 12
#: Months of new leads averaged for today's volume (as ``monthly_report``'s ``new_leads``).
VOLUME_MONTHS = 3
#: Draws behind the months-from-lead-to-win figure.
CYCLE_DRAWS = 100
#: Kinds of cached results that depend on control values; the other cache entries are the
#: per-segment inputs (posterior draws, open pipeline, recent volume, stage flows).
ANSWER_CACHES = frozenset({"adjust", "plan_sims", "leads_needed", "p_hit", "curve", "forecast", "cycle",
                           "leverage"})

Pairs = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Question:
    """The values of the controls, as simulator arguments.

    ``segment``: (factor, level) pairs; ``conversion``/``stall``: (stage, multiplier)
    pairs different from 1 (relative multipliers); ``target`` in ``target_unit``;
    ``window``: months 1..window; ``leads``: planned new leads per month (absolute).
    """

    target: float
    window: int
    confidence: float
    leads: int
    target_unit: str = "wins"
    segment: Pairs = ()
    conversion: Pairs = ()
    stall: Pairs = ()

    @property
    def scenario(self) -> tuple[Pairs, Pairs, Pairs]:
        """Key of the adjusted posterior: segment and stage multipliers."""
        return (self.segment, self.conversion, self.stall)

    @property
    def plan_key(self) -> tuple:
        """Key of the leads-needed problem (everything but confidence and planned leads)."""
        return (self.scenario, self.target, self.target_unit, self.window)

    def with_(self, **changes: Any) -> "Question":
        """A copy with some values changed (mappings become sorted pairs)."""
        for k in ("segment", "conversion", "stall"):
            if isinstance(changes.get(k), Mapping):
                changes[k] = tuple(sorted(changes[k].items()))
        return replace(self, **changes)


@dataclass
class Answer:
    """What the dashboard shows for a :class:`Question`.

    Attributes
    ----------
    question : Question
    plan : LeadsNeededResult or None
    p_hit : float
        P(hit) with the planned leads.
    curve : DataFrame or None
        ``leads, probability`` over ``[0, domain]``.
    domain : float
        Right end of the curve's x axis.
    fan : DataFrame or None
        Intervals of cumulative wins (or revenue) per month 1..window.
    leverage : DataFrame or None
        Computed on request (:meth:`WhatIfEngine.leverage`).
    volume : float
        Today's new leads per month of the segment (mean of the last 3 months).
    pipeline_leads : int
        Open leads of the segment at the cut-off.
    cycle_months : float
        Median months from a lead's entry to its win (posterior median).
    error : str or None
        Why the simulator refused the question (shown, never raised).
    timings : dict
        Seconds per simulator call that ran (cache misses only).
    """

    question: Question
    plan: Any = None
    p_hit: float = float("nan")
    curve: pd.DataFrame | None = None
    domain: float = 10.0
    fan: pd.DataFrame | None = None
    leverage: pd.DataFrame | None = None
    volume: float = float("nan")
    pipeline_leads: int = 0
    cycle_months: float = float("nan")
    error: str | None = None
    timings: dict = field(default_factory=dict)


class _LRU(OrderedDict):
    """A small least-recently-used cache: ``get_or(key, make)``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


def nice_ceil(x: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 or 10 times a power of ten that is >= ``x``."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(x))
    return next(m * mag for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= x * (1 - 1e-12))


def curve_domain(answer: int | None, marks: tuple[float, ...]) -> float:
    """Right end of the P(hit) curve: twice the answer, stretched to show the marks
    (planned leads, today's volume, the spreadsheet plan) that are within 5x of it.

    Marks further out are shown at the edge instead, so a small answer is never squashed
    against a far-away mark (and the curve always spans the whole axis).
    """
    base = max(2.0 * answer, 10.0) if answer is not None else 10.0
    reach = 5.0 * max(answer or 0, 2) if answer is not None else math.inf
    hi = base
    for m in marks:
        if m is not None and np.isfinite(m) and 0 < m <= reach:
            hi = max(hi, 1.1 * m)
    return nice_ceil(hi)


class WhatIfEngine:
    """Answers what-if questions for a fitted model (see the module docstring).

    Parameters
    ----------
    model : BaseFunnelModel
        Any fitted model (only its interface is used).
    data : LoadedData
        The data the model was fitted on (cut-off, open pipeline, transitions).
    new_leads : float, optional
        Company-wide planned leads per month (default: the mean of the last 3 months).
    draws, forecast_draws, leverage_draws : int
        Posterior draws behind the headline, the fan chart and the ranking.
    seed : int
    level : float
        Interval level of the ranking.
    """

    def __init__(self, model: Any, data: Any, *, new_leads: float | None = None, draws: int = 1000,
                 forecast_draws: int = 300, leverage_draws: int = 200, seed: int = 0, level: float = 0.8) -> None:
        self.model, self.data = model, data
        self.draws, self.forecast_draws, self.leverage_draws = int(draws), int(forecast_draws), int(leverage_draws)
        self.seed, self.level = int(seed), float(level)
        self.start = data.cutoff_month
        self.segments: dict[str, list[str]] = {str(f): [str(v) for v in lv] for f, lv in model.segments().items()}
        self._pipeline = model.pipeline(data)
        self.transitions = (derive.transitions(data.snapshots(), data.spec, by=list(self.segments))
                            if data.has_leads else None)
        self._cache = _LRU(256)
        base = self.posterior(())
        self.stages, self.names = list(base.stages), list(base.names or base.stages)
        self.has_value = bool(np.all(np.isfinite(base.deal_value)) and np.all(base.deal_value > 0))
        if new_leads is None and self.transitions is None:
            raise ParameterError(f"{data.source}: aggregate counts do not show new leads per lead; set new_leads "
                                 "(planned new leads per month) in the parameter file")
        self.company_leads = float(new_leads) if new_leads is not None else self.volume(())

    # ------------------------------------------------------------------ cached inputs
    def _get(self, key: tuple, make: Callable[[], Any], timings: dict | None = None) -> Any:
        if key in self._cache or timings is None:
            return self._cache.get_or(key, make)
        t = time.perf_counter()
        out = self._cache.get_or(key, make)
        timings[key[0]] = time.perf_counter() - t
        return out

    def posterior(self, segment: Pairs) -> PosteriorFunnel:
        """The segment's posterior, ``draws`` draws (cached)."""
        return self._get(("posterior", segment), lambda: self.model.posterior_funnel(
            dict(segment) or None, draws=self.draws, seed=self.seed))

    def scenario_posterior(self, q: Question, timings: dict | None = None) -> PosteriorFunnel:
        """The segment's posterior with the stage multipliers applied (cached)."""
        return self._get(("adjust", q.scenario), lambda: self.posterior(q.segment).adjust(
            conversion=dict(q.conversion), stall=dict(q.stall)), timings)

    def _rows(self, frame: pd.DataFrame, segment: Pairs, what: str) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for f, lv in segment:
            if f not in frame.columns:
                raise ParameterError(f"the {what} has no column {f!r} to select the segment {f}={lv} on")
            mask &= frame[f].astype(str).to_numpy() == lv
        return frame.loc[mask]

    def pipeline(self, segment: Pairs) -> pd.DataFrame:
        """The segment's open leads as counts by stage (and age in months, when known)."""
        def make() -> pd.DataFrame:
            rows = self._rows(self._pipeline, segment, "open pipeline")
            keys = ["stage", "age_months"] if "age_months" in rows.columns else ["stage"]
            if "count" in rows.columns and "lead_id" not in rows.columns:
                return rows.groupby(keys, as_index=False)["count"].sum()
            return rows.groupby(keys).size().rename("count").reset_index()
        return self._get(("pipeline", segment), make)

    def pipeline_counts(self, segment: Pairs) -> np.ndarray:
        """The segment's open leads by (stage, age) as the simulator reads them (cached)."""
        return self._get(("pipeline_counts", segment), lambda: S.pipeline_state(
            self.posterior(segment), self.pipeline(segment)))

    def volume(self, segment: Pairs) -> float:
        """Today's new leads per month of the segment: the mean of the last 3 months."""
        if self.transitions is None:
            return self.company_leads if not segment else float("nan")
        return self._get(("volume", segment), lambda: S.leads_from_history(
            self._rows(self.transitions, segment, "transitions table"), months=VOLUME_MONTHS))

    def lead_share(self, segment: Pairs) -> float:
        """The segment's share of the recent new leads (1 for all leads)."""
        if not segment:
            return 1.0
        total = self.volume(())
        return self.volume(segment) / total if total > 0 else 0.0

    def win_share(self, segment: Pairs) -> float:
        """The segment's share of the wins of the last 12 months (1 for all leads)."""
        if not segment or self.transitions is None:
            return 1.0
        t = self.transitions
        won = t[(t["to_stage"] == "WON") & (pd.to_datetime(t["month"]) > self.start - pd.DateOffset(
            months=WIN_SHARE_MONTHS))]
        total = float(won["n"].sum())
        return float(self._rows(won, segment, "transitions table")["n"].sum()) / total if total > 0 else 0.0

    def mean_deal_value(self, segment: Pairs) -> float:
        """Posterior mean revenue per win of the segment."""
        return float(np.mean(self.posterior(segment).deal_value))

    def default_target(self, segment: Pairs, leads: float, window: int, unit: str = "wins") -> float:
        """:func:`funnel_models.simulate.default_target` for the segment (in ``unit``), on the
        model's full posterior as the report computes it."""
        full = self._get(("full_posterior", segment), lambda: self.model.posterior_funnel(dict(segment) or None))
        wins = S.default_target(full, self.pipeline_counts(segment), leads, window, start=self.start)
        return wins * self.mean_deal_value(segment) if unit == "revenue" else wins

    def segment_target(self, segment: Pairs, company_target: float, *, derived: bool, leads: float,
                       window: int, unit: str) -> float:
        """The target offered for a segment: the same rule as the company's when that was
        derived from the data, else the company target times the segment's win share."""
        if not segment:
            return company_target
        if derived:
            return self.default_target(segment, leads, window, unit)
        return float(math.ceil(company_target * self.win_share(segment) - 1e-9))

    # ------------------------------------------------------------------ answers
    def plan(self, q: Question, timings: dict | None = None) -> Any:
        """``simulate.leads_needed`` for the question (cached); its simulations, which do
        not depend on the target or the confidence, are cached by scenario and window."""
        post = self.scenario_posterior(q, timings)
        sims = self._get(("plan_sims", q.scenario, q.window), lambda: S.plan_sims(
            post, q.window, pipeline=self.pipeline_counts(q.segment), seed=self.seed, start=self.start), timings)
        return self._get(("leads_needed", q.plan_key, q.confidence), lambda: S.leads_needed(
            post, q.target, q.window, confidence=q.confidence, target_unit=q.target_unit, sims=sims), timings)

    def curve(self, q: Question, plan: Any, domain: float, timings: dict | None = None) -> pd.DataFrame:
        """P(hit) over ``CURVE_POINTS`` plans from 0 to ``domain`` (plus the answer)."""
        def make() -> pd.DataFrame:
            grid = np.unique(np.rint(np.linspace(0.0, domain, CURVE_POINTS)).astype(np.int64))
            if plan.leads is not None:
                grid = np.union1d(grid, [plan.leads])
            return pd.DataFrame({"leads": grid, "probability": plan.problem.probability(grid)})
        return self._get(("curve", q.plan_key, domain), make, timings)

    def fan(self, q: Question, timings: dict | None = None) -> pd.DataFrame | None:
        """Intervals of cumulative wins (revenue for a revenue target) per month (cached)."""
        pipe = self.pipeline_counts(q.segment)
        if q.leads <= 0 and float(pipe.sum()) <= 0:
            return None
        post = self.scenario_posterior(q, timings)

        def make() -> pd.DataFrame:
            fc = S.forecast(post.thin(self.forecast_draws, seed=self.seed), pipe, q.leads, q.window,
                            seed=self.seed, start=self.start, sims_per_draw=1)
            series = fc.revenue if q.target_unit == "revenue" else fc.wins
            return S.intervals(np.cumsum(series, axis=1), FAN_LEVELS, index=np.arange(1, q.window + 1),
                               name="month")
        return self._get(("forecast", q.scenario, q.leads, q.window, q.target_unit), make, timings)

    def leverage(self, q: Question, timings: dict | None = None) -> pd.DataFrame:
        """``simulate.leverage``: extra wins per month from improving each stage (cached)."""
        post = self.scenario_posterior(q, timings)
        return self._get(("leverage", q.scenario, q.leads, q.window), lambda: S.leverage(
            post.thin(self.leverage_draws, seed=self.seed), self.pipeline_counts(q.segment), q.leads, q.window,
            level=self.level, start=self.start), timings)

    def cycle_months(self, q: Question, timings: dict | None = None) -> float:
        """Median months from a new lead's entry to its win (posterior median)."""
        post = self.scenario_posterior(q, timings)
        return self._get(("cycle", q.scenario), lambda: post.thin(CYCLE_DRAWS, seed=self.seed).typical_months_to_win(),
                         timings)

    def flows(self, segment: Pairs, months: int | None = 12) -> FlowTable | None:
        """Stage flows of the segment over the last ``months`` months to the cut-off (None: all)."""
        if self.transitions is None:
            return None
        since = None if months is None else self.start - pd.DateOffset(months=int(months) - 1)
        return self._get(("flows", segment, months), lambda: flow_table(
            self.transitions, self.stages, names=self.names, segment=dict(segment), since=since,
            until=self.start))

    def answer(self, q: Question, marks: tuple[float, ...] = ()) -> Answer:
        """Everything the main view shows for ``q`` (errors are caught into ``Answer.error``).

        ``marks`` are x positions the curve should show besides the planned leads (today's
        volume); the spreadsheet plan is added here.
        """
        a = Answer(question=q)
        try:
            a.volume = self.volume(q.segment)
            a.pipeline_leads = int(self.pipeline(q.segment)["count"].sum())
            a.plan = self.plan(q, a.timings)
            a.p_hit = self._get(("p_hit", q.plan_key, q.leads),
                                lambda: float(a.plan.problem.probability(q.leads)[0]), a.timings)
            a.domain = curve_domain(a.plan.leads, (q.leads, *marks, a.plan.naive_leads or 0))
            a.curve = self.curve(q, a.plan, a.domain, a.timings)
            a.fan = self.fan(q, a.timings)
            a.cycle_months = self.cycle_months(q, a.timings)
        except Exception as exc:  # noqa: BLE001 - shown in the dashboard, never a bare traceback
            a.error = f"{type(exc).__name__}: {exc}"
        return a
