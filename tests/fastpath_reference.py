"""Straightforward reference versions of the simulator routines that were made faster.

Each function here is the plain algorithm the package used before it was optimised (one
destination at a time, one month at a time, pandas where it reads naturally), kept for
the tests in ``test_fast_paths.py``: the optimised routine must give the same numbers
(bit for bit where the random draws are involved).
"""
from __future__ import annotations

import numpy as np

_TOL = 1e-12


def multinomial_rows(rng: np.random.Generator, n: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Multinomial counts for counts ``n`` (D, R) and probabilities ``probs`` (D, R, C),
    one possible destination after another, the share left recomputed at each step."""
    D, R, C = probs.shape
    out = np.zeros((D, R, C), dtype=np.int64)
    rem = n.astype(np.int64, copy=True)
    left = np.ones((D, R))
    cols = np.flatnonzero((probs > 0).any(axis=(0, 1)))
    for i, c in enumerate(cols):
        if not rem.any():
            break
        if i == len(cols) - 1:
            take = rem
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.where(left > _TOL, probs[..., c] / np.maximum(left, _TOL), 0.0)
            take = rng.binomial(rem, np.clip(p, 0.0, 1.0))
            left = left - probs[..., c]
        out[..., c] = take
        rem = rem - take
    return out


def age_one_month(stayed: np.ndarray, arrivals: np.ndarray, K: int) -> np.ndarray:
    """Stayers one month older (the last age keeps its own), arrivals at age 0."""
    A = stayed.shape[-1]
    x_next = np.zeros_like(stayed)
    if A == 1:
        x_next[..., 0] = stayed[..., 0]
    else:
        x_next[..., 1:] += stayed[..., :-1]
        x_next[..., -1] += stayed[..., -1]
    x_next[..., 0] += arrivals[:, :K]
    return x_next


def step_sampled(rngs, rates: np.ndarray, entry: np.ndarray, x: np.ndarray, leads: np.ndarray):
    """One month of random moves: new leads from ``rngs[K]``, stage ``k`` from ``rngs[k]``."""
    D, K, A = x.shape
    C = K + 2
    st = np.zeros((D, K, A), dtype=np.int64)
    arrivals = multinomial_rows(rngs[K], leads[:, None], entry[:, None, :])[:, 0, :]
    for k in range(K):
        n = x[:, k].reshape(D * A)
        live = np.flatnonzero(n)
        if not live.size:
            continue
        got = multinomial_rows(rngs[k], n[live][None], rates[:, k].reshape(D * A, C)[live][None])[0]
        stay_k = np.zeros(D * A, dtype=np.int64)
        stay_k[live] = got[:, k]
        st[:, k] = stay_k.reshape(D, A)
        got[:, k] = 0
        for row, d in enumerate(live // A):
            arrivals[d] += got[row]
    return age_one_month(st, arrivals, K), arrivals


def step_expected(rates: np.ndarray, entry: np.ndarray, x: np.ndarray, leads: np.ndarray):
    """One month of expected moves, written out with the staying column padded."""
    K = x.shape[-2]
    flows = x[..., None] * rates
    st = np.einsum("dkak->dka", flows[..., :K])
    arrivals = flows.sum(axis=(1, 2)) - np.pad(st.sum(-1), ((0, 0), (0, 2)))
    arrivals = arrivals + leads[:, None] * entry
    return age_one_month(st, arrivals, K), arrivals


def interval_table(draws: np.ndarray, levels, index, name: str):
    """Mean, sd and central intervals, one quantile call and one column insert per level."""
    import pandas as pd
    d = np.asarray(draws, dtype=float)
    out = pd.DataFrame({name: list(index), "mean": d.mean(0), "sd": d.std(0, ddof=1)})
    for lv in levels:
        tail = (1.0 - lv) / 2.0
        q = np.quantile(d, [tail, 1.0 - tail], axis=0)
        tag = f"{100 * lv:g}".replace(".", "_")
        out[f"lo_{tag}"] = q[0]
        out[f"hi_{tag}"] = q[1]
    return out


def pipeline_wins(rng: np.random.Generator, x0: np.ndarray, r: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Wins of today's open leads per simulation: a binomial for every (stage, age) cell."""
    return rng.binomial(np.broadcast_to(x0, r[row].shape), r[row]).sum(axis=(1, 2))


def bisect(P, lo: int, hi: int, confidence: float) -> int:
    """Smallest N in (lo, hi] with P(N) >= confidence, given P(lo) < confidence <= P(hi)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if P(mid) >= confidence:
            hi = mid
        else:
            lo = mid
    return hi
