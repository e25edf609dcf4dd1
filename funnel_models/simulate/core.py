"""Shared engine of the simulator: argument normalisation and the monthly Markov chain.

Model semantics (used by every module of :mod:`funnel_models.simulate`):

- The state vector runs over ``[open stages..., WON, LOST]``. Each month every open lead
  moves by its row ``P[d, stage, :]`` of posterior draw ``d``; WON and LOST absorb.
- The open pipeline at the cut-off sits in its stage at the end of month 0 (the cut-off
  month) and moves from month 1 on.
- A new lead entering in month ``m`` is, at the end of month ``m``, in the state drawn
  from ``entry[d]`` (so it can be won in its entry month when ``entry[WON] > 0``); it moves
  by ``P`` from month ``m + 1`` on.
- Forecast months are ``1..H`` after the cut-off month.
- The chain is Markov: the months a lead has already spent in its stage do not matter.
  A pipeline's ``age_months`` column is accepted (and reported by callers) but not used.
- Planned new leads are taken as given (rounded to whole leads), not drawn from a
  Poisson distribution: a plan is a decision, not a random quantity.

Two engines share these semantics: :func:`simulate_chain` draws real multinomial moves
for every lead (Monte Carlo futures), :func:`expected_chain` propagates the expected
state vector per draw (exact expectations given each draw's parameters).

Examples
--------
>>> import numpy as np
>>> from funnel_models.posterior import PosteriorFunnel
>>> P = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> post = PosteriorFunnel.from_point(["A"], P, np.array([1.0, 0.0, 0.0]))
>>> entries, state = expected_chain(post.P, post.entry, np.array([10.0, 0, 0]), np.zeros(2), 2)
>>> entries[0, :, 1].tolist()  # expected wins in months 1 and 2
[5.0, 2.5]
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..errors import SimulationError
from ..posterior import INTERVAL_LEVELS, PosteriorFunnel

__all__ = [
    "SeedLike",
    "PipelineLike",
    "LeadsLike",
    "make_rng",
    "check_horizon",
    "check_levels",
    "pipeline_counts",
    "new_leads_vector",
    "round_leads",
    "sims_for",
    "simulate_chain",
    "expected_chain",
    "win_by_months",
    "set_conversion",
    "set_expected_stall",
    "intervals",
    "forecast_months",
    "synthetic_posterior",
]

#: Anything :func:`numpy.random.default_rng` accepts.
SeedLike = Union[int, np.random.Generator, np.random.SeedSequence, None]
#: An open pipeline: ``derive.open_pipeline`` frame, stage -> count mapping/Series, or None.
PipelineLike = Union[pd.DataFrame, pd.Series, Mapping[str, float], None]
#: Planned new leads: one number per month, or one number per forecast month.
LeadsLike = Union[float, int, Sequence[float], np.ndarray]

_TOL = 1e-12


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A local generator from ``seed`` (never the global NumPy state)."""
    return np.random.default_rng(seed)


def check_horizon(horizon: int, name: str = "horizon") -> int:
    """Validate a forecast horizon in months (an int >= 1)."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise SimulationError(f"{name} must be a whole number of months >= 1, got {horizon!r}")
    return int(horizon)


def check_levels(levels: Sequence[float] | float) -> tuple[float, ...]:
    """Validate central-interval levels (each strictly between 0 and 1)."""
    lv = (float(levels),) if np.isscalar(levels) else tuple(float(x) for x in levels)  # type: ignore[arg-type]
    bad = [x for x in lv if not 0.0 < x < 1.0]
    if bad or not lv:
        raise SimulationError(f"interval levels must lie strictly between 0 and 1, got {list(lv)}; "
                              "pass e.g. levels=(0.5, 0.8, 0.95)")
    return lv


def _counts_from_mapping(post: PosteriorFunnel, counts: Mapping[str, float], name: str,
                         allow_closed: bool) -> np.ndarray:
    states = post.states
    out = np.zeros(len(states))
    unknown = [s for s in counts if s not in states]
    if unknown:
        raise SimulationError(f"{name} has unknown stage code(s) {sorted(map(str, unknown))}; "
                              f"the funnel's open stages are {list(post.stages)}"
                              + (" (plus WON and LOST)" if allow_closed else ""))
    for s, v in counts.items():
        i = states.index(s)
        if i >= post.n_stages and not allow_closed:
            raise SimulationError(f"{name} lists closed state {s!r}; an open pipeline holds open stages "
                                  f"only ({list(post.stages)}). Drop the WON/LOST entries.")
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise SimulationError(f"{name}[{s!r}] must be a number, got {v!r}") from None
    return out


def pipeline_counts(post: PosteriorFunnel, pipeline: PipelineLike, *, name: str = "pipeline",
                    allow_closed: bool = False, integer: bool = True) -> np.ndarray:
    """Counts per state ``[open..., WON, LOST]`` from any accepted pipeline form.

    Parameters
    ----------
    post : PosteriorFunnel
        Gives the stage codes.
    pipeline : DataFrame, Series, mapping or None
        A frame from :func:`funnel_models.data.derive.open_pipeline` (one row per open lead,
        column ``stage``; ``age_months`` is accepted but not used: the chain is
        memoryless), a frame with ``stage`` and ``count`` columns, a mapping or Series
        stage code -> count, or ``None`` for an empty pipeline.
    name : str
        Argument name used in error messages.
    allow_closed : bool
        Accept ``WON`` / ``LOST`` entries (closed this month) instead of rejecting them.
    integer : bool
        Require whole counts.

    Returns
    -------
    ndarray, shape (K+2,)
        Float counts; the closed entries are zero unless ``allow_closed``.
    """
    if pipeline is None:
        return np.zeros(post.n_stages + 2)
    if isinstance(pipeline, pd.DataFrame):
        if "stage" not in pipeline.columns:
            raise SimulationError(f"{name} DataFrame needs a 'stage' column (as produced by "
                                  f"derive.open_pipeline); it has {list(pipeline.columns)}")
        stage = pipeline["stage"].astype(str)
        if "count" in pipeline.columns and "lead_id" not in pipeline.columns:
            counts = pd.to_numeric(pipeline["count"], errors="coerce").groupby(stage.to_numpy()).sum()
        else:
            counts = stage.value_counts()
        mapping: Mapping[str, float] = {str(k): float(v) for k, v in counts.items()}
    elif isinstance(pipeline, pd.Series):
        mapping = {str(k): v for k, v in pipeline.items()}
    elif isinstance(pipeline, Mapping):
        mapping = dict(pipeline)
    else:
        raise SimulationError(f"{name} must be a DataFrame from derive.open_pipeline, a mapping or "
                              f"Series stage -> count, or None; got {type(pipeline).__name__}")
    out = _counts_from_mapping(post, mapping, name, allow_closed)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise SimulationError(f"{name} counts must be finite and >= 0, got "
                              f"{dict(zip(post.states, out.tolist()))}")
    if integer and not np.allclose(out, np.round(out)):
        raise SimulationError(f"{name} counts must be whole numbers of leads, got "
                              f"{dict(zip(post.states, out.tolist()))}")
    return out


def new_leads_vector(new_leads: LeadsLike, horizon: int, *, name: str = "new_leads") -> np.ndarray:
    """Planned new leads per forecast month as a float array of length ``horizon``.

    A single number is used for every month; a sequence must have one value per month.
    """
    if isinstance(new_leads, str):
        raise SimulationError(f"{name} must be a number or one number per month; got the string "
                              f"{new_leads!r}. Use simulate.leads_from_history(transitions) to get "
                              "the recent monthly volume.")
    arr = np.asarray(new_leads, dtype=float) if not isinstance(new_leads, pd.Series) else \
        new_leads.to_numpy(dtype=float)
    if arr.ndim == 0:
        arr = np.full(horizon, float(arr))
    if arr.ndim != 1 or arr.size != horizon:
        raise SimulationError(f"{name} must be one number or a list of {horizon} numbers (one per "
                              f"forecast month); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SimulationError(f"{name} must be finite and >= 0, got {arr.tolist()}")
    return arr


def round_leads(leads: np.ndarray) -> np.ndarray:
    """Whole planned leads (round half to even), as int64."""
    return np.rint(leads).astype(np.int64)


def sims_for(n_draws: int, sims_per_draw: int | None, min_sims: int) -> int:
    """Simulations per posterior draw: given, or enough to reach ``min_sims`` in total."""
    if sims_per_draw is None:
        return max(1, -(-min_sims // n_draws))
    if isinstance(sims_per_draw, bool) or not isinstance(sims_per_draw, (int, np.integer)) or sims_per_draw < 1:
        raise SimulationError(f"sims_per_draw must be an int >= 1 or None (automatic), got {sims_per_draw!r}")
    return int(sims_per_draw)


# ---------------------------------------------------------------------- multinomial engine
def _conditional_probs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse conditional-binomial decomposition of categorical rows.

    ``rows`` has shape (D, R, S). Only destinations that are possible in some draw are
    visited. Returns ``cols`` (R, C) destination per step, ``last`` (R,) step that takes
    the remainder and ``cond`` (D, R, C) = p_c / (1 - sum of earlier p), in [0, 1].
    """
    D, R, S = rows.shape
    nz = (rows > 0).any(axis=0)  # (R, S)
    width = max(1, int(nz.sum(1).max()))
    cols = np.zeros((R, width), dtype=np.int64)
    last = np.zeros(R, dtype=np.int64)
    for r in range(R):
        idx = np.flatnonzero(nz[r])
        if idx.size == 0:
            idx = np.array([0])
        cols[r, :idx.size] = idx
        cols[r, idx.size:] = idx[-1]
        last[r] = idx.size - 1
    p = np.take_along_axis(rows, np.broadcast_to(cols[None], (D, R, width)), axis=2)
    valid = np.arange(width)[None, :] <= last[:, None]
    p = np.where(valid[None], p, 0.0)
    before = np.cumsum(p, axis=2) - p
    rem = 1.0 - before
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(rem > _TOL, p / rem, 1.0)
    return cols, last, np.clip(cond, 0.0, 1.0)


def _multinomial(rngs: Sequence[np.random.Generator], n: np.ndarray, cols: np.ndarray, last: np.ndarray,
                 cond: np.ndarray, n_states: int) -> np.ndarray:
    """Multinomial counts (D, R, S) for counts ``n`` (D, R) by sequential binomials.

    Row ``r`` draws from its own generator ``rngs[r]``, so changing one row's
    probabilities leaves the other rows' draws untouched (common random numbers).
    """
    D, R = n.shape
    out = np.zeros((D, R, n_states), dtype=np.int64)
    for r in range(R):
        rem = n[:, r].astype(np.int64, copy=True)
        if not rem.any():
            continue
        for c in range(int(last[r]) + 1):
            if c == last[r]:
                take = rem
            else:
                take = rngs[r].binomial(rem, cond[:, r, c])
            out[:, r, cols[r, c]] += take
            rem = rem - take
            if not rem.any():
                break
    return out


def simulate_chain(P: np.ndarray, entry: np.ndarray, start: np.ndarray, new_leads: np.ndarray,
                   horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo futures of the chain with real multinomial moves, vectorised over draws.

    Parameters
    ----------
    P : ndarray (D, S, S)
        Transition matrices (one future is simulated per row ``d``; repeat draws to get
        several futures per posterior draw).
    entry : ndarray (D, S)
        Entry distribution of new leads.
    start : ndarray (S,) or (D, S)
        Whole counts in each state at the end of month 0 (closed entries are ignored).
    new_leads : ndarray (H,) or (D, H)
        Whole new leads entering in months 1..H.
    horizon : int
    rng : Generator
        Parent generator; every month and source row (each open stage, and new
        leads) gets its own child stream, so scenarios run with the same seed share
        their random numbers wherever their parameters agree.

    Returns
    -------
    entries : ndarray (D, H, S), int64
        Leads arriving in each state during each month (moves from another state plus
        new leads landing there). ``entries[..., K]`` are the wins of the month.
    state : ndarray (D, H, S), int64
        Leads in each open state at the end of each month; WON / LOST columns hold the
        leads closed since the cut-off.
    """
    D, S, _ = P.shape
    K = S - 2
    x = np.broadcast_to(np.asarray(start), (D, S))[:, :K].astype(np.int64).copy()
    leads = np.broadcast_to(np.asarray(new_leads, dtype=np.int64), (D, horizon))
    cols, last, cond = _conditional_probs(P[:, :K, :])
    ecols, elast, econd = _conditional_probs(entry[:, None, :])
    entries = np.zeros((D, horizon, S), dtype=np.int64)
    state = np.zeros((D, horizon, S), dtype=np.int64)
    closed = np.zeros((D, 2), dtype=np.int64)
    diag = np.arange(K)
    streams = rng.spawn(horizon * (K + 1))   # one stream per month and source row
    for m in range(horizon):
        row_rngs = streams[m * (K + 1):(m + 1) * (K + 1)]
        flows = _multinomial(row_rngs[:K], x, cols, last, cond, S)   # (D, K, S)
        arrive = _multinomial(row_rngs[K:], leads[:, m:m + 1], ecols, elast, econd, S)[:, 0, :]
        new_state = flows.sum(axis=1) + arrive
        stay = flows[:, diag, diag]
        ent = new_state.copy()
        ent[:, :K] -= stay
        entries[:, m] = ent
        closed += new_state[:, K:]
        x = new_state[:, :K]
        state[:, m, :K] = x
        state[:, m, K:] = closed
    return entries, state


def expected_chain(P: np.ndarray, entry: np.ndarray, start: np.ndarray, new_leads: np.ndarray,
                   horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected entries and states per draw by propagating the expected state vector.

    Same arguments and outputs as :func:`simulate_chain` (floats instead of counts);
    ``start`` and ``new_leads`` may be fractional.
    """
    D, S, _ = P.shape
    K = S - 2
    x = np.broadcast_to(np.asarray(start, dtype=float), (D, S))[:, :K].copy()
    leads = np.broadcast_to(np.asarray(new_leads, dtype=float), (D, horizon))
    entries = np.zeros((D, horizon, S))
    state = np.zeros((D, horizon, S))
    closed = np.zeros((D, 2))
    Pdiag = P[:, np.arange(K), np.arange(K)]
    for m in range(horizon):
        arrive = leads[:, m:m + 1] * entry
        new_state = np.einsum("dk,dks->ds", x, P[:, :K, :]) + arrive
        ent = new_state.copy()
        ent[:, :K] -= x * Pdiag
        entries[:, m] = ent
        closed += new_state[:, K:]
        x = new_state[:, :K]
        state[:, m, :K] = x
        state[:, m, K:] = closed
    return entries, state


def win_by_months(P: np.ndarray, start: np.ndarray, months: int) -> np.ndarray:
    """P(in WON after ``t`` monthly steps) for t = 0..months, from start distributions.

    Computed backwards: ``v_t = P v_{t-1}`` with ``v_0`` the WON indicator gives
    ``v_t[s] = P(won within t steps | state s)``, so each step is one matrix-vector
    product per draw whatever the number of start rows.

    Parameters
    ----------
    P : ndarray (D, S, S)
    start : ndarray (D, R, S)
        ``R`` start distributions per draw (e.g. ``entry[:, None]`` or one-hot stages).
    months : int

    Returns
    -------
    ndarray (D, R, months + 1)
    """
    D, S, _ = P.shape
    K = S - 2
    x = np.asarray(start, dtype=float)
    v = np.zeros((D, S))
    v[:, K] = 1.0
    out = np.empty(x.shape[:2] + (months + 1,))
    for t in range(months + 1):
        out[..., t] = np.einsum("drs,ds->dr", x, v)
        if t < months:
            v = np.einsum("dst,dt->ds", P, v)
    return out


# ---------------------------------------------------------------------- per-draw adjustments
def set_conversion(P: np.ndarray, k: int, new_conv: np.ndarray) -> np.ndarray:
    """Copy of ``P`` whose stage ``k`` has conversion ``new_conv`` (per draw, clipped to [0, 1]).

    Same rule as :meth:`PosteriorFunnel.adjust`: the stay probability is kept, the
    move-on destinations are rescaled together and LOST takes the rest of the leavers.
    A draw with no move-on destination keeps its row.
    """
    P = P.copy()
    S = P.shape[1]
    row = P[:, k, :]
    stay = row[:, k].copy()
    leave = 1.0 - stay
    fwd = row.copy()
    fwd[:, k] = 0.0
    fwd[:, S - 1] = 0.0
    fwd_tot = fwd.sum(-1)
    conv = np.clip(np.broadcast_to(np.asarray(new_conv, float), stay.shape), 0.0, 1.0)
    ok = fwd_tot > _TOL
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(ok, conv * leave / np.where(ok, fwd_tot, 1.0), 1.0)
    new_row = fwd * scale[:, None]
    new_row[:, k] = stay
    new_row[:, S - 1] = np.where(ok, leave * (1.0 - conv), row[:, S - 1])
    P[:, k, :] = new_row
    return P


def set_expected_stall(P: np.ndarray, k: int, new_expected: np.ndarray) -> np.ndarray:
    """Copy of ``P`` whose stage ``k`` has expected stall ``new_expected`` months (per draw, >= 1).

    Where a lead goes when it leaves is kept (same rule as :meth:`PosteriorFunnel.adjust`).
    """
    P = P.copy()
    stay = P[:, k, k].copy()
    e_new = np.maximum(1.0, np.broadcast_to(np.asarray(new_expected, float), stay.shape))
    new_stay = 1.0 - 1.0 / e_new
    leave_old = 1.0 - stay
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(leave_old > _TOL, (1.0 - new_stay) / leave_old, 0.0)
    P[:, k, :] *= scale[:, None]
    P[:, k, k] = np.where(leave_old > _TOL, new_stay, stay)
    return P


# ---------------------------------------------------------------------- summaries
def intervals(draws: np.ndarray, levels: Sequence[float] | float = INTERVAL_LEVELS,
              index: Sequence[object] | pd.Index | None = None, name: str = "item") -> pd.DataFrame:
    """Mean and equal-tailed central intervals of draws.

    Parameters
    ----------
    draws : ndarray (n,) or (n, m)
        Draws along axis 0; each column of a 2-D array is summarised separately.
    levels : sequence of float
        Central interval levels, e.g. ``(0.5, 0.8, 0.95)``.
    index : sequence, optional
        Labels of the columns (default ``0..m-1``), stored in column ``name``.
    name : str
        Name of the label column.

    Returns
    -------
    DataFrame
        ``name, mean, sd, lo_50, hi_50, ...`` (percent labels), one row per column.

    Examples
    --------
    >>> intervals(np.arange(101.0), levels=(0.5,))[["mean", "lo_50", "hi_50"]].values.tolist()
    [[50.0, 25.0, 75.0]]
    """
    lv = check_levels(levels)
    d = np.asarray(draws, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] == 0:
        raise SimulationError(f"intervals needs a non-empty (draws,) or (draws, items) array, got shape {d.shape}")
    labels = list(range(d.shape[1])) if index is None else list(index)
    out = pd.DataFrame({name: labels, "mean": d.mean(0), "sd": d.std(0, ddof=1) if d.shape[0] > 1 else 0.0})
    for level in lv:
        tail = (1.0 - level) / 2.0
        q = np.quantile(d, [tail, 1.0 - tail], axis=0)
        tag = f"{100 * level:g}".replace(".", "_")
        out[f"lo_{tag}"] = q[0]
        out[f"hi_{tag}"] = q[1]
    return out


def forecast_months(start: object | None, horizon: int) -> pd.Index:
    """Labels of forecast months 1..H: month starts after ``start``'s month, or integers."""
    if start is None:
        return pd.Index(np.arange(1, horizon + 1), name="month")
    try:
        base = pd.Timestamp(start).to_period("M").to_timestamp()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SimulationError(f"start must be the cut-off month (a date), got {start!r}") from None
    return pd.DatetimeIndex([base + pd.DateOffset(months=m) for m in range(1, horizon + 1)], name="month")


def synthetic_posterior(post: PosteriorFunnel, n_draws: int, *, concentration: float | None = None,
                        seed: SeedLike = 0) -> PosteriorFunnel:
    """A many-draw posterior around the first draw of ``post`` (for tests, benchmarks, demos).

    Parameters
    ----------
    post : PosteriorFunnel
        Source of the central parameters (its first draw, e.g. a known truth).
    n_draws : int
        Number of draws.
    concentration : float, optional
        ``None`` repeats the parameters exactly (no parameter uncertainty). Otherwise
        every open row and the entry distribution are drawn from
        ``Dirichlet(concentration * p)`` over their possible destinations (larger means
        tighter), and the deal value is kept.
    seed : int or Generator
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise SimulationError(f"n_draws must be an int >= 1, got {n_draws!r}")
    P0, e0, v0 = post.P[0], post.entry[0], float(post.deal_value[0])
    P = np.repeat(P0[None], n_draws, axis=0)
    entry = np.repeat(e0[None], n_draws, axis=0)
    if concentration is not None:
        if not np.isfinite(concentration) or concentration <= 0:
            raise SimulationError(f"concentration must be > 0 or None, got {concentration!r}")
        rng = make_rng(seed)
        K = post.n_stages
        for k in range(K):
            nz = P0[k] > 0
            P[:, k, nz] = rng.dirichlet(concentration * P0[k, nz], n_draws)
        nz = e0 > 0
        entry[:, nz] = rng.dirichlet(concentration * e0[nz], n_draws)
    return PosteriorFunnel(stages=post.stages, P=P, entry=entry, deal_value=np.full(n_draws, v0),
                           names=post.names, label=post.label)
