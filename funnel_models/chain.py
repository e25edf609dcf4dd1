"""The monthly chain over (stage, months in stage): the mathematics behind posteriors and simulations.

A lead is in an open stage ``k`` with an *age* ``a``: the whole months it has already spent
in that stage at a month end (0 in the month it arrived). Each month it moves by the row
``rates[..., k, a, :]`` over the destinations ``[open stages..., WON, LOST]``:

- column ``k`` (staying) takes it to age ``a + 1`` (the last age ``A - 1`` loops on itself);
- another open column ``j`` takes it to ``(j, 0)``; only later stages are allowed (the
  funnel is monotone);
- WON and LOST absorb.

With one age (``A == 1``) this is the memoryless monthly Markov chain. With several ages
the last age is *cold*: a lead that has spent ``A - 1`` months in a stage without moving is
counted as gone cold for the eventual quantities (win rates, conversion, stall), because
data that rarely record losses cannot tell "still possible" from "forgotten" in the tail.
Forecasts still let cold leads move at the rates fitted for that age.

Arrays: ``rates`` has shape ``(..., K, A, K + 2)``, ``entry`` ``(..., K + 2)`` (where a new
lead is at the end of its entry month, at age 0), states ``x`` ``(..., K, A)``.

Examples
--------
>>> import numpy as np
>>> R = np.array([[[[0.5, 0.3, 0.2]]]])          # one draw, one stage, one age
>>> absorption(R)[0, 0].round(3).tolist()          # [WON, LOST, COLD] from the stage
[0.6, 0.4, 0.0]
>>> float(expected_months(R)[0, 0])
2.0
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .errors import ModelConfigError

__all__ = ["check_rates", "stay", "survival", "absorption", "absorption_by_age", "expected_months",
           "months_quantile", "forward_share", "reach_next", "won_to_go", "step_expected",
           "step_sampled", "split_probabilities", "SplitProbabilities", "age_index"]

_TOL = 1e-12


def check_rates(rates: np.ndarray, entry: np.ndarray) -> None:
    """Validate shapes, normalisation and monotonicity; :class:`ModelConfigError` if not."""
    if rates.ndim < 3:
        raise ModelConfigError(f"rates must have shape (..., K, A, K+2), got {rates.shape}")
    K, A, C = rates.shape[-3:]
    if C != K + 2 or A < 1:
        raise ModelConfigError(f"rates must have shape (..., K, A, K+2), got {rates.shape}")
    if entry.shape[-1] != C:
        raise ModelConfigError(f"entry must end in {C} destinations, got {entry.shape}")
    if not (_sums_to_one(rates) and _sums_to_one(entry)):
        raise ModelConfigError("transition rows and entry distributions must sum to 1")
    if np.any(rates < -1e-12) or np.any(entry < -1e-12):
        raise ModelConfigError("transition probabilities must be >= 0")
    back = np.tril(np.ones((K, K), dtype=bool), k=-1)[:, None, :]   # destination j < source k
    if np.any((rates[..., :K] > 1e-9) & back):
        raise ModelConfigError("the chain must be monotone: no moves back to an earlier open stage")


def _sums_to_one(probs: np.ndarray) -> bool:
    """Every row along the last axis sums to 1 (within ``1e-6 + 1e-5``, as ``np.allclose``)."""
    return bool(np.all(np.abs(np.einsum("...c->...", probs) - 1.0) <= 1e-6 + 1e-5))


def age_index(age_months: np.ndarray, n_ages: int) -> np.ndarray:
    """Chain age of whole months spent in a stage (ages beyond the last are the last)."""
    return np.clip(np.asarray(age_months, dtype=np.int64), 0, n_ages - 1)


def stay(rates: np.ndarray) -> np.ndarray:
    """Probability of staying in stage ``k`` at age ``a``, shape (..., K, A)."""
    K = rates.shape[-3]
    return np.einsum("...kak->...ka", rates[..., :K])


def survival(rates: np.ndarray) -> np.ndarray:
    """P(a lead that entered stage ``k`` reaches age ``a`` there), shape (..., K, A)."""
    s = stay(rates)
    out = np.ones_like(s)
    out[..., 1:] = np.cumprod(s[..., :-1], axis=-1)
    return out


def _geometric(s: np.ndarray) -> np.ndarray:
    """``1 / (1 - s)`` with the never-leaving case mapped to 0 (it never reaches anything)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(1.0 - s > _TOL, 1.0 / np.maximum(1.0 - s, _TOL), 0.0)


def absorption_by_age(rates: np.ndarray) -> np.ndarray:
    """P(ending WON / LOST / COLD) from every (stage, age), shape (..., K, A, 3).

    Backward recursion over stages (the chain is monotone) and ages. With one age the
    stage row loops on itself (memoryless chain); a stage that is never left counts as
    cold. With several ages the last age is cold.
    """
    K, A = rates.shape[-3], rates.shape[-2]
    out = np.zeros(rates.shape[:-3] + (K, A, 3))
    W, L = K, K + 1
    for k in range(K - 1, -1, -1):
        later = out[..., k + 1:, 0, :]                                  # (..., K-k-1, 3)
        for a in range(A - 1, -1, -1):
            r = rates[..., k, a, :]
            if A > 1 and a == A - 1:
                out[..., k, a, 2] = 1.0
                continue
            v = np.stack([r[..., W], r[..., L], np.zeros_like(r[..., W])], axis=-1)
            v = v + np.einsum("...j,...jc->...c", r[..., k + 1:K], later)
            if A == 1:
                g = _geometric(r[..., k])
                v = v * g[..., None]
                v[..., 2] = np.where(g == 0.0, 1.0, v[..., 2])
            else:
                v = v + r[..., k][..., None] * out[..., k, a + 1, :]
            out[..., k, a, :] = v
    return out


def absorption(rates: np.ndarray) -> np.ndarray:
    """P(ending WON / LOST / COLD) for a lead arriving in each stage, shape (..., K, 3)."""
    return absorption_by_age(rates)[..., 0, :]


def _eventual_weights(rates: np.ndarray) -> np.ndarray:
    """Weight of each age in 'where the lead leaves from', (..., K, A): survival, with the
    cold age left out (several ages) or the geometric loop summed (one age)."""
    S = survival(rates)
    if rates.shape[-2] == 1:
        return _geometric(stay(rates))
    return np.concatenate([S[..., :-1], np.zeros_like(S[..., -1:])], axis=-1)


def forward_share(rates: np.ndarray) -> np.ndarray:
    """Stage conversion: P(a lead arriving in stage ``k`` moves on (a later stage or WON)
    before it is lost or goes cold), shape (..., K)."""
    K = rates.shape[-3]
    w = _eventual_weights(rates)
    fwd = np.stack([rates[..., k, :, k + 1:K + 1].sum(-1) for k in range(K)], axis=-2)
    return (w * fwd).sum(-1)


def reach_next(rates: np.ndarray) -> np.ndarray:
    """P(a lead arriving in stage ``k`` ever enters exactly ``k + 1``), shape (..., K).

    For the last open stage: its win rate. Differs from :func:`forward_share` only where
    stages are skipped.
    """
    K = rates.shape[-3]
    w = _eventual_weights(rates)
    out = np.stack([(w[..., k, :] * rates[..., k, :, k + 1]).sum(-1) for k in range(K)], axis=-1)
    return out


def expected_months(rates: np.ndarray) -> np.ndarray:
    """Expected month ends a lead spends in stage ``k`` (its arrival month included) before
    it leaves or goes cold, shape (..., K)."""
    if rates.shape[-2] == 1:
        return 1.0 / np.clip(1.0 - stay(rates)[..., 0], _TOL, None)
    return survival(rates).sum(-1)


def months_quantile(rates: np.ndarray, q: float) -> np.ndarray:
    """``q``-quantile of the month ends spent in each stage, shape (..., K) (>= 1).

    With several ages the answer is capped at the cold age ``A``.
    """
    A = rates.shape[-2]
    if A == 1:
        s = np.clip(stay(rates)[..., 0], 1e-12, 1 - 1e-12)
        return np.maximum(1.0, np.ceil(np.log(1.0 - q) / np.log(s)))
    S = survival(rates)                                   # P(T > a) for a = 0..A-1
    done = (1.0 - S) >= q - 1e-12                         # P(T <= a) >= q
    first = np.where(done.any(-1), done.argmax(-1), A)
    return np.maximum(first, 1).astype(float)


def won_to_go(rates_path: np.ndarray, months: int) -> np.ndarray:
    """P(won during months ``t+1..months`` | open state at the end of month ``t``).

    Parameters
    ----------
    rates_path : ndarray (D, H, K, A, K+2)
        Rates of forecast months ``1..H`` (``H >= months``).
    months : int
        Last month of the window.

    Returns
    -------
    ndarray (D, months + 1, K, A)
        Entry ``[:, t]`` for t = 0..months (zero at ``t = months``).
    """
    D, _, K, A, _ = rates_path.shape
    v = np.zeros((D, months + 1, K, A))
    nxt = np.minimum(np.arange(A) + 1, A - 1)
    for t in range(months - 1, -1, -1):
        r = rates_path[:, t]                                 # the rates of month t + 1
        cur = v[:, t + 1]
        st = stay(r)
        moved = np.einsum("dkaj,dj->dka", r[..., :K], cur[..., 0]) - st * cur[..., 0][..., None]
        v[:, t] = r[..., K] + moved + st * cur[..., nxt]
    return v


def step_expected(rates: np.ndarray, entry: np.ndarray, x: np.ndarray, leads: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One month of expected moves.

    Parameters
    ----------
    rates : ndarray (D, K, A, K+2)
    entry : ndarray (D, K+2)
    x : ndarray (D, K, A)
        Open leads at the end of the previous month.
    leads : ndarray (D,)
        New leads entering this month.

    Returns
    -------
    x_next : ndarray (D, K, A)
    arrivals : ndarray (D, K+2)
        Leads arriving in each state this month (moves from another state plus new
        leads); WON / LOST are the month's closes.
    """
    K = x.shape[-2]
    flows = x[..., None] * rates                                    # (D, K, A, C)
    st = np.einsum("dkak->dka", flows[..., :K])                     # staying
    arrivals = np.einsum("dkac->dc", flows)
    arrivals[:, :K] -= st.sum(-1)                                   # stayers arrive nowhere
    arrivals += leads[:, None] * entry
    return _age_one_month(st, arrivals, K), arrivals


class SplitProbabilities(NamedTuple):
    """What one month's multinomial moves are drawn with (:func:`split_probabilities`).

    ``entry_cols`` are the destinations possible for a new lead and ``entry`` (D, c) the
    conditional probabilities of :func:`_conditional` over them; ``stage_cols[k]`` and
    ``stages[k]`` (D * A, c_k) the same for the leads in stage ``k`` (rows by draw, then age).
    """

    entry_cols: np.ndarray
    entry: np.ndarray
    stage_cols: tuple[np.ndarray, ...]
    stages: tuple[np.ndarray, ...]


def _possible(probs: np.ndarray) -> np.ndarray:
    """The destinations (columns) with a positive probability in some row of ``probs`` (R, C)."""
    return np.flatnonzero((probs > 0).any(axis=0))


def _conditional(probs: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """P(destination ``cols[i]`` | none of ``cols[:i]``) per row of ``probs`` (R, C), clipped
    to [0, 1]: the binomial probabilities that draw a multinomial one destination at a time.

    The share left before ``cols[i]`` is ``1 - p[cols[0]] - ... - p[cols[i-1]]``,
    subtracted in that order, as when it is updated destination by destination.
    """
    sub = probs[:, cols]
    left = np.subtract.accumulate(np.concatenate([np.ones((len(sub), 1)), sub[:, :-1]], axis=1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(left > _TOL, sub / np.maximum(left, _TOL), 0.0)
    return np.clip(p, 0.0, 1.0)


def split_probabilities(rates: np.ndarray, entry: np.ndarray) -> SplitProbabilities:
    """The conditional probabilities :func:`step_sampled` draws a month's moves with.

    They depend on the month's rates only: a run whose months share their rates (no
    season, no month shocks) computes them once for every month.
    """
    D, K, A, C = rates.shape
    rows = [rates[:, k].reshape(D * A, C) for k in range(K)]
    stage_cols = tuple(_possible(r) for r in rows)
    ecols = _possible(entry)
    return SplitProbabilities(ecols, _conditional(entry, ecols), stage_cols,
                              tuple(_conditional(r, c) for r, c in zip(rows, stage_cols)))


def _multinomial_rows(rng: np.random.Generator, n: np.ndarray, cond: np.ndarray, cols: np.ndarray,
                      C: int) -> np.ndarray:
    """Multinomial counts (R, C) for counts ``n`` (R,) by sequential binomials over the
    possible destinations ``cols`` with the conditional probabilities ``cond`` (R, len(cols))
    of :func:`_conditional`. The last one takes the rest; nothing more is drawn once every
    row has run out of leads."""
    out = np.zeros((len(n), C), dtype=np.int64)
    rem = n.astype(np.int64, copy=True)
    for i, c in enumerate(cols):
        if not rem.any():
            break
        take = rem if i == len(cols) - 1 else rng.binomial(rem, cond[:, i])
        out[:, c] = take
        rem = rem - take
    return out


def step_sampled(rng: np.random.Generator | Sequence[np.random.Generator], rates: np.ndarray,
                 entry: np.ndarray, x: np.ndarray, leads: np.ndarray, *,
                 split: SplitProbabilities | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One month of random moves (same arguments and outputs as :func:`step_expected`,
    whole counts instead of expectations).

    ``rng`` is one generator, or ``K + 1`` of them: one per source stage (all its ages),
    then one for the new leads. With separate streams, changing one stage's rates leaves
    the draws of every other stage unchanged (common random numbers for scenarios).
    ``split``: :func:`split_probabilities` of ``rates`` and ``entry``, for months that
    share their rates; without it they are computed here for the rows holding leads.
    """
    D, K, A = x.shape
    rngs = [rng] * (K + 1) if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != K + 1:
        raise ModelConfigError(f"step_sampled needs one generator or {K + 1} (one per stage, then new leads), "
                               f"got {len(rngs)}")
    C = K + 2
    ecols = _possible(entry) if split is None else split.entry_cols
    arrivals = _multinomial_rows(rngs[K], leads, _conditional(entry, ecols) if split is None else split.entry,
                                 ecols, C)
    st = np.zeros((D, K, A), dtype=np.int64)                 # stayers by source (stage, age)
    for k in range(K):
        n = x[:, k].reshape(D * A)
        live = np.flatnonzero(n)                             # only rows holding leads are drawn
        if not live.size:
            continue
        if split is not None and live.size == D * A:         # every row: the stage's own destinations
            cond, cols = split.stages[k], split.stage_cols[k]
        else:
            probs = rates[:, k].reshape(D * A, C)[live]
            cols = _possible(probs)
            cond = _conditional(probs, cols)
        moved = np.zeros((D * A, C), dtype=np.int64)
        moved[live] = _multinomial_rows(rngs[k], n[live], cond, cols, C)
        st[:, k] = moved[:, k].reshape(D, A)
        moved[:, k] = 0
        arrivals += moved.reshape(D, A, C).sum(axis=1)
    return _age_one_month(st, arrivals, K), arrivals


def stack_path(rates: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-month rates (each (D, K, A, C)) into a path (D, H, K, A, C)."""
    return np.stack(list(rates), axis=1)


def _age_one_month(stayed: np.ndarray, arrivals: np.ndarray, K: int) -> np.ndarray:
    """Next month's (D, K, A) state: the leads that stayed grow one month older (the last
    age bucket keeps its own), the month's arrivals in each open stage start at age 0."""
    if stayed.shape[-1] == 1:
        return stayed + arrivals[:, :K, None]
    x_next = np.empty_like(stayed)
    x_next[..., 0] = arrivals[:, :K]
    x_next[..., 1:] = stayed[..., :-1]
    x_next[..., -1] += stayed[..., -1]
    return x_next
