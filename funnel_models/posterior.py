"""Posterior draws of the monthly funnel and the absorbing-chain quantities derived from them.

:class:`PosteriorFunnel` is the contract between every model (MCMC, conjugate, lag) and
the simulator, reports and dashboard. It holds draws of the monthly transition matrix over
the states ``[open stages..., WON, LOST]`` and of the entry distribution of new leads.

With ``Q`` the open-to-open block and ``R`` the open-to-closed block of a transition
matrix, the fundamental matrix ``N = (I - Q)^-1`` gives exact absorbing-chain answers:
``N @ R`` is the probability of ending won or lost from each stage, and
``N[k, j] / N[j, j]`` the probability of ever visiting ``j`` from ``k``.

Examples
--------
>>> import numpy as np
>>> P = np.array([[[0.5, 0.3, 0.0, 0.2],
...                [0.0, 0.5, 0.25, 0.25],
...                [0.0, 0.0, 1.0, 0.0],
...                [0.0, 0.0, 0.0, 1.0]]])
>>> post = PosteriorFunnel(stages=("A", "B"), P=P, entry=np.array([[1.0, 0, 0, 0]]))
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

from .errors import ModelConfigError, SimulationError

__all__ = ["PosteriorFunnel", "interval", "INTERVAL_LEVELS"]

#: Central interval levels reported by default.
INTERVAL_LEVELS = (0.5, 0.8, 0.95)


def interval(draws: np.ndarray, level: float = 0.9, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed central interval of ``draws`` along ``axis``."""
    lo = (1.0 - level) / 2.0
    return np.quantile(draws, lo, axis=axis), np.quantile(draws, 1.0 - lo, axis=axis)


@dataclass(frozen=True)
class PosteriorFunnel:
    """Posterior draws of the monthly funnel for one segment and month.

    Parameters
    ----------
    stages : tuple of str
        Open stage codes, in order (``K`` of them).
    P : ndarray, shape (draws, K+2, K+2)
        Monthly transition matrices over ``[open..., WON, LOST]``; rows sum to 1 and the
        WON and LOST rows are absorbing.
    entry : ndarray, shape (draws, K+2)
        Where a new lead is at the end of the month it enters.
    deal_value : ndarray, shape (draws,), optional
        Revenue per won deal (posterior of the mean deal value). NaN when unknown.
    names : tuple of str, optional
        Readable stage names.
    label : str
        What this posterior describes, e.g. ``"region=North"``.
    """

    stages: tuple[str, ...]
    P: np.ndarray
    entry: np.ndarray
    deal_value: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    label: str = "all"
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        K = len(self.stages)
        P = np.asarray(self.P, dtype=float)
        entry = np.asarray(self.entry, dtype=float)
        if P.ndim != 3 or P.shape[1:] != (K + 2, K + 2):
            raise ModelConfigError(f"P must have shape (draws, {K + 2}, {K + 2}), got {P.shape}")
        if entry.shape != (P.shape[0], K + 2):
            raise ModelConfigError(f"entry must have shape ({P.shape[0]}, {K + 2}), got {entry.shape}")
        if not np.allclose(P.sum(-1), 1.0, atol=1e-6) or not np.allclose(entry.sum(-1), 1.0, atol=1e-6):
            raise ModelConfigError("transition rows and entry distributions must sum to 1")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "entry", entry)
        if self.deal_value is None:
            object.__setattr__(self, "deal_value", np.full(P.shape[0], np.nan))
        else:
            object.__setattr__(self, "deal_value", np.broadcast_to(np.asarray(self.deal_value, float), (P.shape[0],)).copy())

    # ------------------------------------------------------------------ basics
    @property
    def n_draws(self) -> int:
        """Number of posterior draws."""
        return int(self.P.shape[0])

    @property
    def n_stages(self) -> int:
        """Number of open stages ``K``."""
        return len(self.stages)

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
        return replace(self, P=self.P[idx], entry=self.entry[idx], deal_value=self.deal_value[idx])

    @classmethod
    def from_point(cls, stages: Sequence[str], P: np.ndarray, entry: np.ndarray,
                   deal_value: float = float("nan"), **kw: object) -> "PosteriorFunnel":
        """A one-draw 'posterior' from known parameters (used for truth and tests)."""
        return cls(stages=tuple(stages), P=np.asarray(P, float)[None], entry=np.asarray(entry, float)[None],
                   deal_value=np.array([deal_value]), **kw)  # type: ignore[arg-type]

    @classmethod
    def from_rows(cls, stages: Sequence[str], rows: Mapping[str, tuple[Sequence[str], np.ndarray]],
                  deal_value: np.ndarray | float | None = None, **kw: object) -> "PosteriorFunnel":
        """Assemble transition matrices from per-row destination probabilities.

        Parameters
        ----------
        stages : sequence of str
            Open stage codes.
        rows : mapping source -> (destinations, probs)
            ``source`` is ``"ENTRY"`` or an open stage; ``probs`` has shape
            (draws, len(destinations)). A stage without a row (never observed) gets an
            even split over staying, the next state and LOST, and is listed in
            ``meta["unobserved_rows"]``.
        """
        stages = tuple(stages)
        K = len(stages)
        states = stages + ("WON", "LOST")
        pos = {s: i for i, s in enumerate(states)}
        n = next(iter(rows.values()))[1].shape[0]
        P = np.zeros((n, K + 2, K + 2))
        P[:, K, K] = P[:, K + 1, K + 1] = 1.0
        entry = np.zeros((n, K + 2))
        missing = []
        for k, code in enumerate(stages):
            if code in rows:
                dest, probs = rows[code]
                P[:, k, [pos[d] for d in dest]] = probs
            else:
                missing.append(code)
                P[:, k, [k, k + 1, K + 1]] = 1.0 / 3.0
        if "ENTRY" in rows:
            dest, probs = rows["ENTRY"]
            entry[:, [pos[d] for d in dest]] = probs
        else:
            entry[:, 0] = 1.0
        meta = dict(kw.pop("meta", {}) or {})  # type: ignore[arg-type]
        meta["unobserved_rows"] = missing
        return cls(stages=stages, P=P, entry=entry, deal_value=deal_value, meta=meta, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ absorbing chain
    def fundamental(self) -> np.ndarray:
        """Fundamental matrix ``N = (I - Q)^-1``, shape (draws, K, K)."""
        K = self.n_stages
        Q = self.P[:, :K, :K]
        return np.linalg.inv(np.eye(K)[None] - Q)

    def absorption(self) -> np.ndarray:
        """Probability of ending WON / LOST from each open stage, shape (draws, K, 2)."""
        K = self.n_stages
        return self.fundamental() @ self.P[:, :K, K:]

    def win_rate(self) -> np.ndarray:
        """Probability of eventually winning from each open stage, shape (draws, K)."""
        return self.absorption()[..., 0]

    def lead_win_rate(self) -> np.ndarray:
        """Probability that a new lead is eventually won, shape (draws,)."""
        K = self.n_stages
        return np.einsum("dk,dk->d", self.entry[:, :K], self.win_rate()) + self.entry[:, K]

    def conversion(self) -> np.ndarray:
        """Stage-to-stage conversion, shape (draws, K).

        The probability that a prospect in stage ``k`` moves on to a later stage
        (``k+1``, a skip beyond it, or WON) rather than being lost. For the last open
        stage it is the win rate from that stage.
        """
        K = self.n_stages
        stay = self.P[:, np.arange(K), np.arange(K)]
        lost = self.P[:, :K, K + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (1.0 - stay - lost) / (1.0 - stay)
        return np.nan_to_num(out, nan=0.0)

    def reach_next(self) -> np.ndarray:
        """Probability that a prospect in stage ``k`` ever visits exactly ``k+1``, (draws, K).

        From the fundamental matrix: ``N[k, k+1] / N[k+1, k+1]``; for the last stage, the
        win rate. Differs from :meth:`conversion` only where stages are skipped.
        """
        N = self.fundamental()
        K = self.n_stages
        out = np.empty((self.n_draws, K))
        for k in range(K - 1):
            out[:, k] = N[:, k, k + 1] / N[:, k + 1, k + 1]
        out[:, K - 1] = self.win_rate()[:, K - 1]
        return out

    def expected_stall(self) -> np.ndarray:
        """Expected months a prospect stays in each open stage (incl. the entry month), (draws, K)."""
        K = self.n_stages
        stay = self.P[:, np.arange(K), np.arange(K)]
        return 1.0 / np.clip(1.0 - stay, 1e-12, None)

    def median_stall(self) -> np.ndarray:
        """Median months in each open stage (geometric time in stage), (draws, K)."""
        K = self.n_stages
        stay = np.clip(self.P[:, np.arange(K), np.arange(K)], 1e-12, 1 - 1e-12)
        return np.ceil(np.log(0.5) / np.log(stay))

    def stall_quantile(self, q: float) -> np.ndarray:
        """``q``-quantile of months in each open stage, (draws, K)."""
        K = self.n_stages
        stay = np.clip(self.P[:, np.arange(K), np.arange(K)], 1e-12, 1 - 1e-12)
        return np.maximum(1.0, np.ceil(np.log(1.0 - q) / np.log(stay)))

    def cycle_time_cdf(self, horizon: int = 24) -> np.ndarray:
        """P(a new lead is won by month h after entry), h = 0..horizon-1, shape (draws, horizon).

        Month 0 is the entry month; the curve rises to :meth:`lead_win_rate`.
        """
        K = self.n_stages
        state = self.entry.copy()
        out = np.empty((self.n_draws, horizon))
        for h in range(horizon):
            out[:, h] = state[:, K]
            state = np.einsum("ds,dst->dt", state, self.P)
        return out

    def median_cycle_time(self, horizon: int = 60) -> np.ndarray:
        """Median months from entry to win among eventually-won leads, shape (draws,)."""
        cdf = self.cycle_time_cdf(horizon)
        final = self.lead_win_rate()[:, None]
        frac = cdf / np.clip(final, 1e-12, None)
        return (frac < 0.5).sum(axis=1).astype(float)

    # ------------------------------------------------------------------ adjustments
    def adjust(
        self,
        conversion: Mapping[str, float] | None = None,
        stall: Mapping[str, float] | None = None,
    ) -> "PosteriorFunnel":
        """A what-if copy with scaled conversion and stall time per stage.

        Parameters
        ----------
        conversion : mapping of stage code -> multiplier, optional
            Multiplies the stage's conversion (odds of moving on rather than being lost
            are rescaled so that conversion becomes ``min(1, m * conversion)``); the
            stall time is kept.
        stall : mapping of stage code -> multiplier, optional
            Multiplies the expected months in the stage (``0.5`` halves it); where the
            lead goes when it leaves is kept.
        """
        P = self.P.copy()
        K = self.n_stages
        for code, m in (conversion or {}).items():
            if m < 0:
                raise SimulationError(f"conversion multiplier for {code!r} must be >= 0, got {m}")
            k = self.stage_index(code)
            row = P[:, k, :]
            stay = row[:, k].copy()
            leave = 1.0 - stay
            fwd = row.copy()
            fwd[:, k] = 0.0
            fwd[:, K + 1] = 0.0
            fwd_tot = fwd.sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                conv = np.where(leave > 0, fwd_tot / leave, 0.0)
                new_conv = np.clip(conv * m, 0.0, 1.0)
                scale = np.where(fwd_tot > 0, new_conv * leave / fwd_tot, 0.0)
            row_new = fwd * scale[:, None]
            row_new[:, k] = stay
            row_new[:, K + 1] = leave * (1.0 - new_conv)
            P[:, k, :] = row_new
        for code, m in (stall or {}).items():
            if m <= 0:
                raise SimulationError(f"stall multiplier for {code!r} must be > 0, got {m}")
            k = self.stage_index(code)
            stay = P[:, k, k]
            exp_old = 1.0 / np.clip(1.0 - stay, 1e-12, None)
            exp_new = np.maximum(1.0, exp_old * m)
            new_stay = 1.0 - 1.0 / exp_new
            leave_old = 1.0 - stay
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(leave_old > 0, (1.0 - new_stay) / leave_old, 0.0)
            P[:, k, :] *= scale[:, None]
            P[:, k, k] = new_stay
        return replace(self, P=P)

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
            lo, hi = interval(d, level)
            out[f"{key}_mean"] = d.mean(0)
            out[f"{key}_lo"] = lo
            out[f"{key}_hi"] = hi
        return out
