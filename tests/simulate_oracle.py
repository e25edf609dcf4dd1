"""Helpers for the simulator tests: aged posteriors and an independent dense-matrix oracle.

The oracle expands every (stage, age) pair into its own state of an ordinary Markov chain
(:func:`test_chain.dense`) and propagates state vectors with plain matrix products, one
matrix per month, without the simulator's code.
"""
from __future__ import annotations

import numpy as np

from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate.core import aged_posterior
from test_chain import dense

__all__ = ["aged", "dense", "dense_wins", "month_matrices"]


def aged(post: PosteriorFunnel, n_ages: int, decay: float = 0.6, **kw) -> PosteriorFunnel:
    """``post`` with ``n_ages`` ages whose monthly chance of leaving (moving on, winning or
    being lost) is multiplied by ``decay ** age``: old leads move, win and close less."""
    return aged_posterior(post, n_ages, decay=decay, **kw)


def month_matrices(rates_path: np.ndarray) -> np.ndarray:
    """Dense matrices (D, H, S, S) of a rates path (D, H, K, A, K+2), leads never cold."""
    return np.stack([dense(rates_path[:, h], cold=False) for h in range(rates_path.shape[1])], axis=1)


def dense_wins(rates_path: np.ndarray, entry_path: np.ndarray, x0: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """Expected wins per draw and month (D, H) by dense matrix-vector products.

    ``x0`` (K, A) open leads at the end of month 0; ``leads`` (H,) entering in months 1..H
    at age 0 (or straight into WON / LOST by ``entry``).
    """
    D, H, K, A, _ = rates_path.shape
    n = K * A
    P = month_matrices(rates_path)
    s = np.zeros((D, n + 3))
    s[:, :n] = x0.reshape(n)
    out = np.zeros((D, H))
    for h in range(H):
        won_before = s[:, n].copy()
        s = np.einsum("ds,dst->dt", s, P[:, h])
        e = entry_path[:, h]
        s[:, [k * A for k in range(K)]] += leads[h] * e[:, :K]
        s[:, n:n + 2] += leads[h] * e[:, K:]
        out[:, h] = s[:, n] - won_before
    return out
