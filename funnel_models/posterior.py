"""Posterior draws of the monthly funnel and the stage-level answers derived from them.

:class:`PosteriorFunnel` is the contract between every model (MCMC, conjugate, lag) and
the simulator, reports and dashboard. It holds draws of the monthly move probabilities
from every open stage *and every age in that stage* (whole months already spent there),
the entry distribution of new leads, and optionally how much whole months vary (fresh
month shocks and a seasonal pattern on the log-odds). :mod:`funnel_models.chain` states
the chain's semantics; with one age it is the memoryless Markov chain.

Stage-level views (conversion, win rates, stall, cycle time) account for age. With
several ages the last one is *cold* (see :mod:`funnel_models.chain`): eventual
quantities count a lead that sat that long without moving as gone cold.

Examples
--------
>>> import numpy as np
>>> P = np.array([[[0.5, 0.3, 0.0, 0.2],
...                [0.0, 0.5, 0.25, 0.25],
...                [0.0, 0.0, 1.0, 0.0],
...                [0.0, 0.0, 0.0, 1.0]]])
>>> post = PosteriorFunnel.from_matrix(("A", "B"), P, np.array([[1.0, 0, 0, 0]]))
>>> post.win_rate()[0].round(3).tolist()
[0.3, 0.5]
>>> post.expected_stall()[0].tolist()
[2.0, 2.0]
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import chain
from .errors import ModelConfigError, SimulationError
from .intervals import INTERVAL_LEVELS, central_interval

__all__ = ["PosteriorFunnel", "INTERVAL_LEVELS"]


def _bcast(a: np.ndarray | None, n: int, shape: tuple[int, ...], what: str) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a, dtype=float)
    if arr.shape != (n,) + shape:
        raise ModelConfigError(f"{what} must have shape {(n,) + shape}, got {arr.shape}")
    return arr


@dataclass(frozen=True)
class PosteriorFunnel:
    """Posterior draws of the monthly funnel for one segment.

    Parameters
    ----------
    stages : tuple of str
        Open stage codes, in order (``K`` of them).
    rates : ndarray, shape (draws, K, A, K+2)
        Monthly move probabilities from stage ``k`` at age ``a`` to ``[open..., WON,
        LOST]`` (column ``k`` is staying, which ages the lead); ``A == 1`` is memoryless.
    entry : ndarray, shape (draws, K+2)
        Where a new lead is at the end of the month it enters (at age 0).
    deal_value : ndarray, shape (draws,), optional
        Revenue per won deal. NaN when unknown.
    names : tuple of str, optional
        Readable stage names.
    label : str
        What this posterior describes, e.g. ``"region=North"``.
    meta : mapping
        Free-form facts for reports (the month, the model, unobserved rows, ...).
    shock_sd : ndarray, shape (draws, K+1), optional
        Standard deviation of a month's shock on the log-odds of every move out of each
        source row (the open stages, then new leads); future months draw it afresh.
    common_sd : ndarray, shape (draws,), optional
        Standard deviation of a month's shock shared by every move of every source row (a
        busy or a quiet month for the whole funnel), on top of ``shock_sd``.
    season : ndarray, shape (draws, 12, K+1, K+2), optional
        Log-odds offsets by calendar month (January first) for each source row and
        destination.
    """

    stages: tuple[str, ...]
    rates: np.ndarray
    entry: np.ndarray
    deal_value: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    label: str = "all"
    meta: Mapping[str, object] = field(default_factory=dict)
    shock_sd: np.ndarray | None = None
    season: np.ndarray | None = None
    common_sd: np.ndarray | None = None

    def __post_init__(self) -> None:
        rates = np.asarray(self.rates, dtype=float)
        entry = np.asarray(self.entry, dtype=float)
        K = len(self.stages)
        if rates.ndim != 4 or rates.shape[1] != K or rates.shape[3] != K + 2:
            raise ModelConfigError(f"rates must have shape (draws, {K}, ages, {K + 2}), got {rates.shape}")
        if entry.shape != (rates.shape[0], K + 2):
            raise ModelConfigError(f"entry must have shape ({rates.shape[0]}, {K + 2}), got {entry.shape}")
        chain.check_rates(rates, entry)
        n = rates.shape[0]
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "entry", entry)
        dv = np.full(n, np.nan) if self.deal_value is None else \
            np.broadcast_to(np.asarray(self.deal_value, float), (n,)).copy()
        object.__setattr__(self, "deal_value", dv)
        object.__setattr__(self, "shock_sd", _bcast(self.shock_sd, n, (K + 1,), "shock_sd"))
        object.__setattr__(self, "season", _bcast(self.season, n, (12, K + 1, K + 2), "season"))
        object.__setattr__(self, "common_sd", _bcast(self.common_sd, n, (), "common_sd"))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_matrix(cls, stages: Sequence[str], P: np.ndarray, entry: np.ndarray,
                    **kw: object) -> "PosteriorFunnel":
        """A memoryless posterior from transition matrices ``P`` (draws, K+2, K+2)."""
        K = len(stages)
        P = np.asarray(P, dtype=float)
        if P.ndim != 3 or P.shape[1:] != (K + 2, K + 2):
            raise ModelConfigError(f"P must have shape (draws, {K + 2}, {K + 2}), got {P.shape}")
        return cls(stages=tuple(stages), rates=P[:, :K, None, :], entry=entry, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_point(cls, stages: Sequence[str], P: np.ndarray, entry: np.ndarray,
                   deal_value: float = float("nan"), **kw: object) -> "PosteriorFunnel":
        """A one-draw memoryless 'posterior' from a known matrix (truth, tests)."""
        return cls.from_matrix(stages, np.asarray(P, float)[None], np.asarray(entry, float)[None],
                               deal_value=np.array([deal_value]), **kw)

    @classmethod
    def from_rows(cls, stages: Sequence[str], rows: Mapping[str, tuple[Sequence[str], np.ndarray]],
                  deal_value: np.ndarray | float | None = None, *, n_ages: int = 1,
                  **kw: object) -> "PosteriorFunnel":
        """Assemble rates from per-row destination probabilities.

        Parameters
        ----------
        stages : sequence of str
            Open stage codes.
        rows : mapping source -> (destinations, probs)
            ``source`` is ``"ENTRY"`` or an open stage; ``probs`` has shape (draws,
            n_dest) or (draws, n_ages, n_dest) for stage rows. A stage without a row
            (never observed leaving or staying) gets an even split over staying, the next
            state and LOST, and is listed in ``meta["unobserved_rows"]``.
        n_ages : int
            Ages of the chain (1: memoryless).
        """
        stages = tuple(stages)
        K = len(stages)
        states = stages + ("WON", "LOST")
        pos = {s: i for i, s in enumerate(states)}
        n = next(iter(rows.values()))[1].shape[0]
        rates = np.zeros((n, K, n_ages, K + 2))
        entry = np.zeros((n, K + 2))
        missing = []
        for k, code in enumerate(stages):
            if code not in rows:
                missing.append(code)
                rates[:, k, :, [k, k + 1, K + 1]] = 1.0 / 3.0
                continue
            dest, probs = rows[code]
            probs = np.asarray(probs, float)
            idx = [pos[d] for d in dest]
            rates[:, k][..., idx] = probs[:, None, :] if probs.ndim == 2 else probs
        if "ENTRY" in rows:
            dest, probs = rows["ENTRY"]
            entry[:, [pos[d] for d in dest]] = probs
        else:
            entry[:, 0] = 1.0
        meta = dict(kw.pop("meta", {}) or {})  # type: ignore[arg-type]
        meta["unobserved_rows"] = missing
        return cls(stages=stages, rates=rates, entry=entry, deal_value=deal_value, meta=meta, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ basics
    @property
    def n_draws(self) -> int:
        """Number of posterior draws."""
        return int(self.rates.shape[0])

    @property
    def n_stages(self) -> int:
        """Number of open stages ``K``."""
        return len(self.stages)

    @property
    def n_ages(self) -> int:
        """Ages of the chain (1: memoryless)."""
        return int(self.rates.shape[2])

    @property
    def cold_after(self) -> int | None:
        """Months in a stage without moving after which a lead counts as cold (None: memoryless)."""
        return self.n_ages - 1 if self.n_ages > 1 else None

    @property
    def states(self) -> tuple[str, ...]:
        """``stages + ("WON", "LOST")``."""
        return tuple(self.stages) + ("WON", "LOST")

    def stage_index(self, stage: str) -> int:
        """Index of an open stage code; :class:`SimulationError` if unknown."""
        try:
            return self.stages.index(stage)
        except ValueError:
            raise SimulationError(f"unknown stage code {stage!r}; the funnel's stages are "
                                  f"{list(self.stages)}") from None

    def thin(self, n: int, seed: int = 0) -> "PosteriorFunnel":
        """A random subset of ``n`` draws (all draws if ``n`` >= draws)."""
        if n >= self.n_draws:
            return self
        idx = np.sort(np.random.default_rng(seed).choice(self.n_draws, n, replace=False))
        return self.take(idx)

    def take(self, idx: np.ndarray) -> "PosteriorFunnel":
        """The draws ``idx`` (repeats allowed)."""
        return replace(self, rates=self.rates[idx], entry=self.entry[idx], deal_value=self.deal_value[idx],
                       shock_sd=None if self.shock_sd is None else self.shock_sd[idx],
                       season=None if self.season is None else self.season[idx],
                       common_sd=None if self.common_sd is None else self.common_sd[idx])

    # ------------------------------------------------------------------ eventual outcomes
    def absorption(self) -> np.ndarray:
        """P(ending WON / LOST / COLD) for a lead arriving in each stage, (draws, K, 3)."""
        return chain.absorption(self.rates)

    def win_rate(self) -> np.ndarray:
        """P(eventually won) for a lead arriving in each open stage, (draws, K)."""
        return self.absorption()[..., 0]

    def lead_win_rate(self) -> np.ndarray:
        """P(a new lead is eventually won), (draws,)."""
        K = self.n_stages
        return np.einsum("dk,dk->d", self.entry[:, :K], self.win_rate()) + self.entry[:, K]

    def lead_outcomes(self) -> np.ndarray:
        """P(a new lead ends WON / LOST / COLD), (draws, 3)."""
        K = self.n_stages
        out = np.einsum("dk,dkc->dc", self.entry[:, :K], self.absorption())
        out[:, 0] += self.entry[:, K]
        out[:, 1] += self.entry[:, K + 1]
        return out

    def pipeline_outcomes(self, counts: np.ndarray) -> np.ndarray:
        """Expected number of today's open leads that end WON / LOST / COLD, (draws, 3).

        ``counts`` (K, A) holds the open leads by stage and age (see
        :func:`funnel_models.simulate.pipeline_state`).
        """
        x = np.asarray(counts, dtype=float)
        if x.shape != (self.n_stages, self.n_ages):
            raise SimulationError(f"pipeline counts must have shape ({self.n_stages}, {self.n_ages}), got {x.shape}")
        return np.einsum("ka,dkac->dc", x, chain.absorption_by_age(self.rates))

    def conversion(self) -> np.ndarray:
        """Stage conversion, (draws, K): P(moving on to a later stage or WON rather than
        being lost or going cold). For the last open stage it is the win rate from it."""
        return chain.forward_share(self.rates)

    def reach_next(self) -> np.ndarray:
        """P(a lead in stage ``k`` ever enters exactly ``k+1``), (draws, K); the win rate
        for the last stage. Differs from :meth:`conversion` only where stages are skipped."""
        return chain.reach_next(self.rates)

    # ------------------------------------------------------------------ time
    def expected_stall(self) -> np.ndarray:
        """Expected month ends in each open stage (arrival month included), (draws, K)."""
        return chain.expected_months(self.rates)

    def median_stall(self) -> np.ndarray:
        """Median month ends in each open stage, (draws, K)."""
        return chain.months_quantile(self.rates, 0.5)

    def stall_quantile(self, q: float) -> np.ndarray:
        """``q``-quantile of the month ends spent in each open stage, (draws, K)."""
        if not 0.0 < q < 1.0:
            raise SimulationError(f"q must lie strictly between 0 and 1, got {q!r}")
        return chain.months_quantile(self.rates, q)

    def cycle_time_cdf(self, horizon: int = 24) -> np.ndarray:
        """P(a new lead is won by month ``h`` after entry), h = 0..horizon-1, (draws, horizon).

        Month 0 is the entry month. Leads keep moving at their fitted rates at every age.
        """
        D, K, A = self.n_draws, self.n_stages, self.n_ages
        x = np.zeros((D, K, A))
        x[..., 0] = self.entry[:, :K]
        won = self.entry[:, K].copy()
        out = np.empty((D, horizon))
        for h in range(horizon):
            out[:, h] = won
            x, arrivals = chain.step_expected(self.rates, self.entry, x, np.zeros(D))
            won = won + arrivals[:, K]
        return out

    def median_cycle_time(self, horizon: int = 60) -> np.ndarray:
        """Median months from entry to win among the leads won within ``horizon`` months, (draws,)."""
        cdf = self.cycle_time_cdf(horizon)
        frac = cdf / np.clip(cdf[:, -1:], 1e-12, None)
        return (frac < 0.5).sum(axis=1).astype(float)

    def typical_months_to_win(self, horizon: int = 36) -> float:
        """Typical months from a new lead's entry to its win: the posterior median of
        :meth:`median_cycle_time` over ``horizon`` months (what the report, the dashboard
        and ``funnel fit`` print; a posterior mean would follow the draws with a long tail)."""
        return float(np.median(self.median_cycle_time(horizon=horizon)))

    # ------------------------------------------------------------------ month variation
    @property
    def has_shocks(self) -> bool:
        """Whether future months draw fresh month shocks (a positive ``shock_sd`` or ``common_sd``)."""
        return any(sd is not None and bool(np.any(sd > 0)) for sd in (self.shock_sd, self.common_sd))

    def month_path(self, calendar_months: Sequence[int], rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Rates and entry distributions for a run of future months.

        Each month gets its seasonal offset (``calendar_months`` are 1..12) and, when
        ``rng`` is given and the posterior has month shocks, a fresh shock per draw, source
        row and destination, applied to the log-odds against the reference destination
        (staying; the first stage for new leads), plus one per draw shared by every move.

        Returns
        -------
        rates : ndarray (draws, H, K, A, K+2)
        entry : ndarray (draws, H, K+2)
        """
        D, K, A = self.n_draws, self.n_stages, self.n_ages
        H = len(calendar_months)
        shocks = self.has_shocks and rng is not None
        if self.season is None and not shocks:
            return (np.broadcast_to(self.rates[:, None], (D, H, K, A, K + 2)),
                    np.broadcast_to(self.entry[:, None], (D, H, K + 2)))
        off = np.zeros((D, H, K + 1, K + 2))
        if self.season is not None:
            off += self.season[:, np.asarray(calendar_months, dtype=np.int64) - 1]
        if self.shock_sd is not None and shocks:
            off += self.shock_sd[:, None, :, None] * rng.standard_normal((D, H, K + 1, K + 2))
        ref = np.append(np.arange(K), 0)                  # staying; first stage for new leads
        off = off - np.take_along_axis(off, ref[None, None, :, None], axis=3)
        if self.common_sd is not None and shocks:
            moves = np.ones((K + 1, K + 2))
            moves[np.arange(K + 1), ref] = 0.0
            off += (self.common_sd[:, None] * rng.standard_normal((D, H)))[:, :, None, None] * moves
        rates = self.rates[:, None] * np.exp(off[:, :, :K, None, :])
        rates = rates / rates.sum(-1, keepdims=True)
        entry = self.entry[:, None] * np.exp(off[:, :, K])
        return rates, entry / entry.sum(-1, keepdims=True)

    # ------------------------------------------------------------------ adjustments
    def adjust(self, conversion: Mapping[str, float] | None = None,
               stall: Mapping[str, float] | None = None) -> "PosteriorFunnel":
        """A what-if copy with scaled conversion and stall time per stage.

        Parameters
        ----------
        conversion : mapping of stage code -> multiplier, optional
            Multiplies the stage conversion (capped at 1): onward moves are taken from the
            leavers who are lost, at every age, and where too few are lost (no recorded
            losses), from the leads that would stay and go cold (:func:`scale_forward`).
        stall : mapping of stage code -> multiplier, optional
            Divides the monthly probability of leaving at every age by the multiplier
            (``2`` roughly doubles the months spent there); where leavers go is kept.
        """
        R = self.rates
        for code, m in (conversion or {}).items():
            if not np.isfinite(m) or m < 0:
                raise SimulationError(f"conversion multiplier for {code!r} must be >= 0, got {m}")
            R = scale_forward(R, self.stage_index(code), np.full(self.n_draws, float(m)))
        for code, m in (stall or {}).items():
            if not np.isfinite(m) or m <= 0:
                raise SimulationError(f"stall multiplier for {code!r} must be > 0, got {m}")
            R = scale_leaving(R, self.stage_index(code), np.full(self.n_draws, 1.0 / float(m)))
        return replace(self, rates=R)

    # ------------------------------------------------------------------ tables
    def stage_table(self, level: float = 0.9) -> pd.DataFrame:
        """Per-stage summary: conversion, win rate and stall with central intervals.

        Returns
        -------
        DataFrame
            One row per open stage with ``mean``, ``lo`` and ``hi`` columns for
            ``conversion``, ``win_rate``, ``expected_stall`` and ``median_stall``.
        """
        rows: dict[str, np.ndarray] = {
            "conversion": self.conversion(),
            "win_rate": self.win_rate(),
            "expected_stall": self.expected_stall(),
            "median_stall": self.median_stall(),
        }
        out = pd.DataFrame({"stage": list(self.stages)})
        if self.names:
            out["name"] = list(self.names)
        for key, d in rows.items():
            lo, hi = central_interval(d, level)
            out[f"{key}_mean"] = d.mean(0)
            out[f"{key}_lo"] = lo
            out[f"{key}_hi"] = hi
        return out


def scale_forward(rates: np.ndarray, k: int, factor: np.ndarray) -> np.ndarray:
    """Copy of ``rates`` whose stage ``k`` converts ``factor`` (per draw) times as often
    (:func:`funnel_models.chain.forward_share`, capped at 1).

    More onward moves are taken first from the leavers who are lost, at every age, staying
    kept. Where too few are lost for that (an export that records no losses, where leads go
    cold instead), the rest is taken from the leads that would stay, at every age, until
    the conversion is reached: converting more then means fewer leads going cold. A factor
    below 1 sends onward leavers to LOST.
    """
    f = np.broadcast_to(np.asarray(factor, float), (rates.shape[0],))
    R = _onward_from(rates, k, f, lost=True)
    target = np.minimum(chain.forward_share(rates)[:, k] * f, 1.0)
    short = chain.forward_share(R)[:, k] < target - 1e-9
    if not short.any():
        return R
    view = _stage_view(R, k)                                  # the search needs stage k alone
    lo, hi = np.zeros(len(f)), np.full(len(f), 30.0)          # log factors on the onward moves
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = chain.forward_share(_onward_from(view, 0, np.exp(mid), lost=False))[:, 0] < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where(short[:, None, None, None], _onward_from(R, k, np.exp(hi), lost=False), R)


def _stage_view(rates: np.ndarray, k: int) -> np.ndarray:
    """Stage ``k`` as a one-stage chain, (D, 1, A, 3): stay, move on (any later state), lost.

    Its conversion and :func:`_onward_from`'s scaling depend only on these three columns,
    so :func:`scale_forward` searches on this view instead of copying the whole chain.
    """
    K = rates.shape[1]
    row = rates[:, k]
    return np.stack([row[..., k], row[..., k + 1:K + 1].sum(-1), row[..., K + 1]], axis=-1)[:, None]


def _onward_from(rates: np.ndarray, k: int, factor: np.ndarray, *, lost: bool) -> np.ndarray:
    """Copy of ``rates`` whose stage ``k`` moves on ``factor`` (per draw) times as often at
    every age, taking the extra from LOST (``lost``) or from staying, as far as it reaches."""
    R = rates.copy()
    K = R.shape[1]
    row = R[:, k]                                        # (D, A, C)
    source = row[..., K + 1] if lost else row[..., k]
    fwd = row[..., k + 1:K + 1]
    fwd_tot = fwd.sum(-1)
    f = np.asarray(factor, float)[:, None]
    ok = fwd_tot > 1e-12
    new_tot = np.where(ok, np.minimum(fwd_tot * f, fwd_tot + source), fwd_tot)   # below 1: to the source
    scale = np.where(ok, new_tot / np.where(ok, fwd_tot, 1.0), 1.0)
    R[:, k, :, k + 1:K + 1] = fwd * scale[..., None]
    R[:, k, :, K + 1 if lost else k] = source - (new_tot - fwd_tot)
    return R


def shift_leaving(rates: np.ndarray, k: int, months: int = 1) -> np.ndarray:
    """Copy of ``rates`` (with ages) in which every lead that leaves stage ``k`` does so
    ``months`` month(s) sooner; who leaves, and where to, is unchanged.

    A lead that would have left in its second month leaves in its first; one that would
    have left at age ``a + 1`` leaves at age ``a``; leads that do not leave are untouched.
    On the chain, per month shifted: age 0 takes the two-month transition (leave now, or
    stay and then do what age 1 does), every later age takes the next age's row, and the
    last age (the cold one, a geometric tail) keeps its own. A lead that would have left
    just after going cold now leaves just before, so the cold share falls by that small
    amount (by definition fewer than :data:`funnel_models.models.config.COLD_SHARE` of
    the moves come that late).
    """
    if rates.shape[2] < 2:
        raise SimulationError("shifting months in a stage needs ages (time in stage); scale the leaving "
                              "probability of a memoryless stage instead (scale_leaving)")
    if months < 0 or int(months) != months:
        raise SimulationError(f"months must be a whole number >= 0, got {months!r}")
    R = rates.copy()
    for _ in range(int(months)):
        row = R[:, k].copy()                                  # (D, A, C)
        first = row[:, 0].copy()
        first[:, k] = 0.0
        R[:, k, 0] = first + row[:, 0, k][:, None] * row[:, 1]
        R[:, k, 1:-1] = row[:, 2:]
    return R


def scale_leaving(rates: np.ndarray, k: int, factor: np.ndarray) -> np.ndarray:
    """Copy of ``rates`` whose stage ``k`` is left ``factor`` (per draw) times as often each
    month (capped at every month); where the leavers go is kept."""
    R = rates.copy()
    row = R[:, k]
    leave = 1.0 - row[..., k]
    f = np.broadcast_to(np.asarray(factor, float), (R.shape[0],))[:, None]
    new_leave = np.clip(leave * f, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(leave > 1e-12, new_leave / leave, 0.0)
    R[:, k] = row * scale[..., None]
    R[:, k, :, k] = np.where(leave > 1e-12, 1.0 - new_leave, row[..., k])
    return R
