"""Shared engine of the simulator: argument normalisation and monthly runs of the (stage, age) chain.

Model semantics (used by every module of :mod:`funnel_models.simulate`; the chain itself is
stated in :mod:`funnel_models.chain`):

- An open lead is in a state (stage, age): its age is the whole months it has already
  spent in the stage at a month end (0 in the month it arrived). Each month it moves by
  its row of that month's rates; WON and LOST absorb. With one age the chain is the
  memoryless monthly Markov chain.
- The open pipeline at the cut-off sits in its (stage, age) at the end of month 0 (the
  cut-off month) and moves from month 1 on (see :func:`pipeline_state`).
- A new lead entering in month ``m`` is, at the end of month ``m``, where ``entry`` puts
  it (an open stage at age 0, or WON / LOST at once); it moves from month ``m + 1`` on.
- Forecast months are ``1..H`` after the cut-off month ``start``. Month ``m`` uses the
  posterior's rates with the seasonal offsets of its calendar month (a posterior with a
  ``season`` therefore needs ``start``) and, in Monte Carlo runs, a month shock drawn
  afresh for every simulated future (:meth:`PosteriorFunnel.month_path`). Expected runs
  use the average month: seasonal offsets, no shocks.
- Planned new leads are taken as given (rounded to whole leads): a plan is a decision.
  Inflow draws ``(n, H)`` from a count model of new leads are uncertain: each simulated
  future gets one inflow path.

Two engines share these semantics: :func:`sampled_run` draws real multinomial moves for
every lead (Monte Carlo futures), :func:`expected_run` propagates the expected state per
draw (exact expectations given each draw's average months).

Examples
--------
>>> import numpy as np
>>> from funnel_models.posterior import PosteriorFunnel
>>> P = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> post = PosteriorFunnel.from_point(["A"], P, np.array([1.0, 0.0, 0.0]))
>>> entries, _, _ = expected_run(post, pipeline_state(post, {"A": 10}), np.zeros(2), calendar_months(None, 2))
>>> entries[0, :, 1].tolist()  # expected wins in months 1 and 2
[5.0, 2.5]
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from .. import chain
from ..errors import SimulationError
from ..posterior import PosteriorFunnel

__all__ = [
    "SeedLike", "PipelineLike", "LeadsLike",
    "make_rng", "check_horizon", "pipeline_state", "observed_counts", "new_leads_vector", "mean_leads",
    "round_leads", "sims_for", "simulation_draws", "calendar_months", "season_months", "forecast_months",
    "expected_inputs", "month_rates", "expected_run", "sampled_run", "synthetic_posterior", "aged_posterior",
]

#: Anything :func:`numpy.random.default_rng` accepts.
SeedLike = Union[int, np.random.Generator, np.random.SeedSequence, None]
#: An open pipeline: ``derive.open_pipeline`` frame, stage/count frame, stage -> count mapping/Series,
#: counts by (stage, age) as :func:`pipeline_state` returns them, or None.
PipelineLike = Union[pd.DataFrame, pd.Series, Mapping[str, float], np.ndarray, None]
#: New leads: one number, one number per month, or inflow draws (n, H).
LeadsLike = Union[float, int, Sequence[float], np.ndarray]


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A local generator from ``seed`` (never the global NumPy state)."""
    return np.random.default_rng(seed)


def check_horizon(horizon: int, name: str = "horizon") -> int:
    """Validate a forecast horizon in months (an int >= 1)."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise SimulationError(f"{name} must be a whole number of months >= 1, got {horizon!r}")
    return int(horizon)


# ---------------------------------------------------------------------- pipelines and counts
def _stage_mapping(pipeline: object, name: str) -> dict[str, object]:
    """Stage -> count from a stage/count frame, a per-lead frame, a Series or a mapping."""
    if isinstance(pipeline, pd.DataFrame):
        if "stage" not in pipeline.columns:
            raise SimulationError(f"{name} DataFrame needs a 'stage' column (as produced by "
                                  f"derive.open_pipeline); it has {list(pipeline.columns)}")
        stage = pipeline["stage"].astype(str).to_numpy()
        if "count" in pipeline.columns and "lead_id" not in pipeline.columns:
            counts = pd.to_numeric(pipeline["count"], errors="coerce").groupby(stage).sum()
        else:
            counts = pd.Series(stage).value_counts()
        return {str(k): float(v) for k, v in counts.items()}
    if isinstance(pipeline, pd.Series):
        return {str(k): v for k, v in pipeline.items()}
    if isinstance(pipeline, Mapping):
        return dict(pipeline)
    raise SimulationError(f"{name} must be a DataFrame from derive.open_pipeline, a mapping or "
                          f"Series stage -> count, or None; got {type(pipeline).__name__}")


def _state_vector(post: PosteriorFunnel, mapping: Mapping[str, object], name: str, allow_closed: bool,
                  integer: bool) -> np.ndarray:
    """Counts per state ``[open..., WON, LOST]`` from a stage -> count mapping, validated."""
    states = post.states
    out = np.zeros(len(states))
    unknown = [s for s in mapping if s not in states]
    if unknown:
        raise SimulationError(f"{name} has unknown stage code(s) {sorted(map(str, unknown))}; "
                              f"the funnel's open stages are {list(post.stages)}"
                              + (" (plus WON and LOST)" if allow_closed else ""))
    for s, v in mapping.items():
        i = states.index(s)
        if i >= post.n_stages and not allow_closed:
            raise SimulationError(f"{name} lists closed state {s!r}; an open pipeline holds open stages "
                                  f"only ({list(post.stages)}). Drop the WON/LOST entries.")
        try:
            out[i] = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SimulationError(f"{name}[{s!r}] must be a number, got {v!r}") from None
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise SimulationError(f"{name} counts must be finite and >= 0, got {dict(zip(states, out.tolist()))}")
    if integer and not np.allclose(out, np.round(out)):
        raise SimulationError(f"{name} counts must be whole numbers of leads, got "
                              f"{dict(zip(states, out.tolist()))}")
    return out


def _state_array(counts: np.ndarray, shape: tuple[int, int], name: str, integer: bool) -> np.ndarray:
    """A (stage, age) count array, validated (a float copy)."""
    out = np.array(counts, dtype=float)
    if out.shape != shape:
        raise SimulationError(f"{name} as an array must hold counts by stage and age, shape {shape} "
                              f"(K open stages, A ages); got shape {out.shape}")
    if not np.all(np.isfinite(out)) or np.any(out < 0) or (integer and not np.allclose(out, np.round(out))):
        raise SimulationError(f"{name} counts must be finite{', whole' if integer else ''} and >= 0; "
                              f"got {out.tolist()}")
    return out


def pipeline_state(post: PosteriorFunnel, pipeline: PipelineLike, *, name: str = "pipeline",
                   integer: bool = True) -> np.ndarray:
    """Open leads by stage and chain age, shape (K, A).

    Parameters
    ----------
    post : PosteriorFunnel
        Gives the stage codes and the number of ages ``A``.
    pipeline : DataFrame, Series, mapping or None
        - a frame from :func:`funnel_models.data.derive.open_pipeline` (one row per open
          lead, columns ``stage`` and ``age_months``): each lead sits at chain age
          :func:`funnel_models.chain.age_index` of its ``age_months`` (ages beyond the
          last are the last). Without an ``age_months`` column every lead is at age 0;
        - a frame with ``stage``, ``count`` and optionally ``age_months`` columns;
        - a mapping or a Series stage code -> count.

        Counts without ages are all put at age 0 (just arrived), the only reading such
        counts allow: with age-dependent hazards that treats old leads as fresh ones;
        - an array (K, A) of counts by stage and chain age, as this function returns
          (e.g. computed once and reused);
        - ``None``: no open leads.
    name : str
        Argument name used in error messages.
    integer : bool
        Require whole counts.

    Returns
    -------
    ndarray (K, A)
        Float counts.
    """
    K, A = post.n_stages, post.n_ages
    out = np.zeros((K, A))
    if pipeline is None:
        return out
    if isinstance(pipeline, np.ndarray):
        return _state_array(pipeline, (K, A), name, integer)
    mapping = _stage_mapping(pipeline, name)
    totals = _state_vector(post, mapping, name, allow_closed=False, integer=integer)
    if isinstance(pipeline, pd.DataFrame) and "age_months" in pipeline.columns:
        age = pd.to_numeric(pipeline["age_months"], errors="coerce")
        bad = age.isna() | (age < 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SimulationError(f"{name} column 'age_months' must hold whole months >= 0; row {row} has "
                                  f"{pipeline['age_months'].iloc[row]!r}. Rebuild it with derive.open_pipeline.")
        per_lead = "count" not in pipeline.columns or "lead_id" in pipeline.columns
        weight = np.ones(len(pipeline)) if per_lead else pd.to_numeric(pipeline["count"]).to_numpy(float)
        k = np.array([post.stage_index(s) for s in pipeline["stage"].astype(str)], dtype=np.int64)
        np.add.at(out, (k, chain.age_index(np.floor(age.to_numpy()), A)), weight)
        return out
    out[:, 0] = totals[:K]
    return out


def observed_counts(post: PosteriorFunnel, counts: PipelineLike, *, name: str = "current_counts") -> np.ndarray:
    """A month's observed counts per state ``[open..., WON, LOST]`` (K+2,), WON / LOST allowed.

    ``counts`` is a mapping / Series stage -> count or a frame with ``stage`` and ``count``
    columns (one month of :func:`funnel_models.data.derive.stage_counts`); missing states
    count 0. Open stages are leads in the stage at the month end, WON / LOST leads closed
    during the month.
    """
    if counts is None:
        return np.zeros(post.n_stages + 2)
    return _state_vector(post, _stage_mapping(counts, name), name, allow_closed=True, integer=True)


# ---------------------------------------------------------------------- new leads
def new_leads_vector(new_leads: LeadsLike, horizon: int, *, name: str = "new_leads") -> np.ndarray:
    """New leads per forecast month: (horizon,) for a plan, (n, horizon) for inflow draws.

    A single number is used for every month; a sequence must have one value per month; a
    2-D array holds ``n`` draws of the monthly inflow (e.g. from a count model of new leads).
    """
    if isinstance(new_leads, str):
        raise SimulationError(f"{name} must be a number or one number per month; got the string "
                              f"{new_leads!r}. Use simulate.leads_from_history(transitions) to get "
                              "the recent monthly volume.")
    arr = new_leads.to_numpy(dtype=float) if isinstance(new_leads, (pd.Series, pd.DataFrame)) else \
        np.asarray(new_leads, dtype=float)
    if arr.ndim == 0:
        arr = np.full(horizon, float(arr))
    if arr.ndim == 2 and (arr.shape[1] != horizon or arr.shape[0] < 1):
        raise SimulationError(f"{name} inflow draws must have shape (draws, {horizon}) (one column per forecast "
                              f"month); got shape {arr.shape}")
    if arr.ndim not in (1, 2) or arr.shape[-1] != horizon:
        raise SimulationError(f"{name} must be one number or a list of {horizon} numbers (one per "
                              f"forecast month); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        bad = arr[~(np.isfinite(arr) & (arr >= 0))][:5]
        raise SimulationError(f"{name} must be finite and >= 0, got {bad.tolist() if arr.ndim == 2 else arr.tolist()}")
    return arr


def mean_leads(leads: np.ndarray) -> np.ndarray:
    """Expected new leads per month (H,): the plan itself, or the mean of inflow draws."""
    return leads if leads.ndim == 1 else leads.mean(axis=0)


def round_leads(leads: np.ndarray) -> np.ndarray:
    """Whole leads (round half to even), as int64."""
    return np.rint(leads).astype(np.int64)


def sims_for(n_draws: int, sims_per_draw: int | None, min_sims: int) -> int:
    """Simulations per posterior draw: given, or enough to reach ``min_sims`` in total."""
    if sims_per_draw is None:
        return max(1, -(-min_sims // n_draws))
    if isinstance(sims_per_draw, bool) or not isinstance(sims_per_draw, (int, np.integer)) or sims_per_draw < 1:
        raise SimulationError(f"sims_per_draw must be an int >= 1 or None (automatic), got {sims_per_draw!r}")
    return int(sims_per_draw)


def simulation_draws(n_draws: int, sims_per_draw: int | None, min_sims: int) -> np.ndarray:
    """The posterior draw behind each simulation: every draw :func:`sims_for` times, in order."""
    return np.repeat(np.arange(n_draws), sims_for(n_draws, sims_per_draw, min_sims))


# ---------------------------------------------------------------------- months
def _timestamp(start: object) -> pd.Timestamp:
    try:
        return pd.Timestamp(start)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SimulationError(f"start must be the cut-off month (a date), got {start!r}") from None


def _month_start(start: object) -> pd.Timestamp:
    return _timestamp(start).to_period("M").to_timestamp()


def calendar_months(start: object | None, horizon: int) -> np.ndarray:
    """Calendar months (1..12) of forecast months 1..H after ``start``'s month, (H,) int.

    Without ``start`` the calendar is unknown and every month is labelled 1; only a
    posterior with a ``season`` needs the real calendar (see :func:`season_months`).
    """
    H = check_horizon(horizon)
    if start is None:
        return np.ones(H, dtype=np.int64)
    return (_timestamp(start).month + np.arange(H)) % 12 + 1


def season_months(post: PosteriorFunnel, start: object | None, horizon: int) -> np.ndarray:
    """:func:`calendar_months`, with a clear error when a seasonal posterior has no ``start``."""
    if start is None and post.season is not None:
        raise SimulationError("this posterior has a seasonal pattern (post.season), so forecast months need a "
                              "calendar: pass start= the cut-off month, e.g. start='2025-12'")
    return calendar_months(start, horizon)


def expected_inputs(post: PosteriorFunnel, pipeline: PipelineLike, new_leads: LeadsLike, horizon: int,
                    start: object | None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The checked inputs of an exact expected run (:func:`expected_run`) over months 1..horizon.

    Returns
    -------
    (H, state, leads, months)
        The horizon, the pipeline by stage and age (:func:`pipeline_state`, not rounded),
        the expected new leads per month (inflow draws count by their mean) and the
        calendar months (:func:`season_months`).
    """
    H = check_horizon(horizon)
    x0 = pipeline_state(post, pipeline, integer=False)
    return H, x0, mean_leads(new_leads_vector(new_leads, H)), season_months(post, start, H)


def forecast_months(start: object | None, horizon: int) -> pd.Index:
    """Labels of forecast months 1..H: month starts after ``start``'s month, or integers."""
    if start is None:
        return pd.Index(np.arange(1, horizon + 1), name="month")
    first = _month_start(start) + pd.DateOffset(months=1)
    return pd.DatetimeIndex(pd.date_range(first, periods=horizon, freq="MS"), freq=None, name="month")


def month_rates(post: PosteriorFunnel, months: np.ndarray, m: int, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rates (D, K, A, K+2) and entry (D, K+2) of forecast month ``m + 1``.

    The posterior's own arrays when it has neither a season nor (with ``rng``) month
    shocks; otherwise :meth:`PosteriorFunnel.month_path` for that calendar month.
    """
    if post.season is None and (not post.has_shocks or rng is None):
        return post.rates, post.entry
    rates, entry = post.month_path([int(months[m])], rng)
    return rates[:, 0], entry[:, 0]


# ---------------------------------------------------------------------- runs
def _run(post: PosteriorFunnel, x0: np.ndarray, leads: np.ndarray, months: np.ndarray,
         streams: Sequence[Sequence[np.random.Generator]] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    D, K, A = post.n_draws, post.n_stages, post.n_ages
    H = len(months)
    dtype = np.float64 if streams is None else np.int64
    x = np.broadcast_to(np.asarray(x0), (D, K, A)).astype(dtype, copy=True)
    lv = np.broadcast_to(np.asarray(leads, dtype=dtype), (D, H))
    entries = np.zeros((D, H, K + 2), dtype=dtype)
    opened = np.zeros((D, H, K + 2), dtype=dtype)
    closed = np.zeros((D, 2), dtype=dtype)
    shared = streams is not None and post.season is None and not post.has_shocks   # every month: post.rates
    split = chain.split_probabilities(post.rates, post.entry) if shared else None
    for m in range(H):
        if streams is None:
            rates, entry = month_rates(post, months, m)
            x, arrivals = chain.step_expected(rates, entry, x, lv[:, m])
        else:
            s = streams[m]
            rates, entry = month_rates(post, months, m, s[K + 1])
            x, arrivals = chain.step_sampled(s[:K + 1], rates, entry, x, lv[:, m], split=split)
        entries[:, m] = arrivals
        closed = closed + arrivals[:, K:]
        opened[:, m, :K] = x.sum(-1)
        opened[:, m, K:] = closed
    return entries, opened, x


def expected_run(post: PosteriorFunnel, x0: np.ndarray, leads: np.ndarray, months: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact expected moves per draw over the average months (seasonal offsets, no shocks).

    Parameters
    ----------
    post : PosteriorFunnel
    x0 : ndarray (K, A) or (D, K, A)
        Open leads at the end of month 0 (fractions allowed).
    leads : ndarray (H,) or (D, H)
        New leads entering in months 1..H.
    months : ndarray (H,)
        Calendar months of the forecast months (:func:`season_months`).

    Returns
    -------
    entries : ndarray (D, H, K+2)
        Expected leads arriving in each state each month (moves from another state plus
        new leads landing there); ``entries[..., K]`` are the month's wins.
    open : ndarray (D, H, K+2)
        Expected open leads per stage (summed over ages) at each month end; WON / LOST
        hold the leads closed since the cut-off.
    last : ndarray (D, K, A)
        Expected open leads by stage and age at the end of month H.
    """
    return _run(post, x0, leads, months, None)


def sampled_run(post: PosteriorFunnel, x0: np.ndarray, leads: np.ndarray, months: np.ndarray,
                rng: np.random.Generator, shocks: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monte Carlo futures with real multinomial moves: one future per draw of ``post``.

    Same arguments and outputs as :func:`expected_run` (int64 counts; ``x0`` and
    ``leads`` whole). Repeat draws (``post.take(idx)``) for several futures per draw.
    Every month gets ``K + 2`` child streams of ``rng``: one per source stage (all its
    ages), one for the new leads and one for the month shocks, so scenarios run with the
    same seed share their random numbers wherever their parameters agree. ``shocks``,
    when given, makes the month shocks' streams instead (runs that must share their
    month shocks but not their moves: the segment cells of one total).
    """
    K, H = post.n_stages, len(months)
    children = rng.spawn(H * (K + 2))
    streams = [children[m * (K + 2):(m + 1) * (K + 2)] for m in range(H)]
    if shocks is not None:
        for m, stream in enumerate(shocks.spawn(H)):
            streams[m][K + 1] = stream
    return _run(post, np.rint(x0).astype(np.int64), np.asarray(leads, dtype=np.int64), months, streams)


# ---------------------------------------------------------------------- synthetic posteriors
def _dirichlet_rows(rng: np.random.Generator, p0: np.ndarray, n: int, concentration: float) -> np.ndarray:
    """``n`` Dirichlet draws around each row of ``p0`` (..., C) over its possible destinations."""
    flat = p0.reshape(-1, p0.shape[-1])
    out = np.zeros((n,) + flat.shape)
    for r, row in enumerate(flat):
        nz = row > 0
        out[:, r, nz] = rng.dirichlet(concentration * row[nz], n)
    return out.reshape((n,) + p0.shape)


def synthetic_posterior(post: PosteriorFunnel, n_draws: int, *, concentration: float | None = None,
                        seed: SeedLike = 0) -> PosteriorFunnel:
    """A many-draw posterior around the first draw of ``post`` (for tests, benchmarks, demos).

    Parameters
    ----------
    post : PosteriorFunnel
        Source of the central parameters (its first draw, e.g. a known truth), with any
        number of ages; its month shocks and season (first draw) are kept.
    n_draws : int
        Number of draws.
    concentration : float, optional
        ``None`` repeats the parameters exactly (no parameter uncertainty). Otherwise
        every (stage, age) row and the entry distribution are drawn from
        ``Dirichlet(concentration * p)`` over their possible destinations (larger means
        tighter), and the deal value is kept.
    seed : int or Generator
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise SimulationError(f"n_draws must be an int >= 1, got {n_draws!r}")
    one = post.take(np.zeros(n_draws, dtype=np.int64))
    if concentration is None:
        return one
    if not np.isfinite(concentration) or concentration <= 0:
        raise SimulationError(f"concentration must be > 0 or None, got {concentration!r}")
    rng = make_rng(seed)
    rates = _dirichlet_rows(rng, post.rates[0], n_draws, concentration)
    entry = _dirichlet_rows(rng, post.entry[0], n_draws, concentration)
    return PosteriorFunnel(stages=post.stages, rates=rates, entry=entry, deal_value=one.deal_value,
                           names=post.names, label=post.label, meta=dict(post.meta),
                           shock_sd=one.shock_sd, season=one.season, common_sd=one.common_sd)


def aged_posterior(post: PosteriorFunnel, n_ages: int, *, decay: float = 0.6, **changes: Any) -> PosteriorFunnel:
    """A posterior with ``n_ages`` ages built from the first age of ``post`` (for tests,
    benchmarks, demos): at age ``a`` the monthly chance of leaving a stage (moving on,
    winning or being lost) is ``decay ** a`` times the first age's, split as before, so
    old leads move, win and close less. ``changes`` are set on the result (e.g.
    ``shock_sd=...``).

    Examples
    --------
    >>> from funnel_models.datasets.demo import demo_data
    >>> old = aged_posterior(demo_data(months=6, leads_per_month=50).truth.posterior(), 4, decay=0.5)
    >>> old.n_ages, old.cold_after
    (4, 3)
    """
    if isinstance(n_ages, bool) or not isinstance(n_ages, (int, np.integer)) or n_ages < 1:
        raise SimulationError(f"n_ages must be an int >= 1, got {n_ages!r}")
    if not np.isfinite(decay) or not 0.0 <= decay <= 1.0:
        raise SimulationError(f"decay must lie between 0 and 1, got {decay!r}")
    K = post.n_stages
    stay = np.eye(K, K + 2, dtype=bool)[None, :, None, :]                # the staying column of each stage
    R = np.repeat(post.rates[:, :, :1], n_ages, axis=2)
    R = np.where(stay, 0.0, R) * (decay ** np.arange(n_ages))[None, None, :, None]
    R = np.where(stay, 1.0 - R.sum(-1, keepdims=True), R)
    return replace(post, rates=R, **changes)
