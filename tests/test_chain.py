"""The (stage, age) chain against an independent dense-matrix implementation.

The oracle expands every (stage, age) pair into its own state of an ordinary absorbing
Markov chain (cold age as an extra absorbing state for the eventual quantities) and uses
plain linear algebra: the fundamental matrix, matrix powers, matrix-vector products.
"""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models import chain


def random_rates(rng, D=3, K=3, A=4, skip=True):
    """Random monotone rates with stays, moves, skips, wins and losses at every age."""
    R = np.zeros((D, K, A, K + 2))
    for k in range(K):
        dest = [k, K, K + 1] + list(range(k + 1, K if skip else min(k + 2, K)))
        for a in range(A):
            R[:, k, a, dest] = rng.dirichlet(np.ones(len(dest)) * 2.0, size=D)
    entry = rng.dirichlet(np.ones(K + 2), size=D)
    return R, entry


def dense(R, cold=True):
    """Expanded matrix over states (k, a) + WON + LOST (+ COLD); staying ages the lead."""
    K, A = R.shape[1], R.shape[2]
    n = K * A
    S = n + 3
    P = np.zeros((R.shape[0], S, S))
    idx = lambda k, a: k * A + a  # noqa: E731
    for k in range(K):
        for a in range(A):
            i = idx(k, a)
            if cold and A > 1 and a == A - 1:
                P[:, i, n + 2] = 1.0
                continue
            P[:, i, idx(k, min(a + 1, A - 1))] += R[:, k, a, k]
            for j in range(k + 1, K):
                P[:, i, idx(j, 0)] += R[:, k, a, j]
            P[:, i, n] = R[:, k, a, K]
            P[:, i, n + 1] = R[:, k, a, K + 1]
    for s in (n, n + 1, n + 2):
        P[:, s, s] = 1.0
    return P


@pytest.mark.parametrize("A", [1, 4])
def test_absorption_matches_the_fundamental_matrix(A):
    R, _ = random_rates(np.random.default_rng(1), A=A)
    P = dense(R)
    n = R.shape[1] * A
    Q, B = P[:, :n, :n], P[:, :n, n:]
    NB = np.linalg.solve(np.eye(n)[None] - Q, B)
    got = chain.absorption_by_age(R).reshape(R.shape[0], n, 3)
    np.testing.assert_allclose(got, NB, atol=1e-10)


@pytest.mark.parametrize("A", [1, 5])
def test_expected_months_and_conversion(A):
    rng = np.random.default_rng(2)
    R, _ = random_rates(rng, A=A)
    K = R.shape[1]
    P = dense(R)
    n = K * A
    N = np.linalg.inv(np.eye(n)[None] - P[:, :n, :n])
    for k in range(K):
        rows = N[:, k * A, k * A:(k + 1) * A]          # expected visits to each age of stage k
        np.testing.assert_allclose(chain.expected_months(R)[:, k], rows.sum(-1), rtol=1e-10)
        # conversion: P(move on to a later stage or WON before LOST/COLD), from the dense chain
        later = [j * A for j in range(k + 1, K)]
        fwd = (rows[:, :, None] * P[:, k * A:(k + 1) * A][:, :, later + [n]]).sum((1, 2))
        np.testing.assert_allclose(chain.forward_share(R)[:, k], fwd, rtol=1e-10)


def test_won_to_go_matches_matrix_powers():
    R, _ = random_rates(np.random.default_rng(3), A=4)
    D, K, A, C = R.shape
    P = dense(R, cold=False)
    n = K * A
    T = 5
    path = np.broadcast_to(R[:, None], (D, T, K, A, C))
    v = chain.won_to_go(path, T)
    for t in range(T + 1):
        Pt = np.linalg.matrix_power(P, T - t)
        np.testing.assert_allclose(v[:, t].reshape(D, n), Pt[:, :n, n], atol=1e-12)


def test_one_expected_step_is_a_matrix_vector_product():
    rng = np.random.default_rng(4)
    R, entry = random_rates(rng, A=3)
    D, K, A, C = R.shape
    x = rng.uniform(0, 10, size=(D, K, A))
    leads = rng.uniform(0, 5, size=D)
    x1, arrivals = chain.step_expected(R, entry, x, leads)
    P = dense(R, cold=False)
    n = K * A
    flat = np.concatenate([x.reshape(D, n), np.zeros((D, 3))], axis=1)
    nxt = np.einsum("ds,dst->dt", flat, P)
    nxt[:, [j * A for j in range(K)]] += leads[:, None] * entry[:, :K]
    np.testing.assert_allclose(x1.reshape(D, n), nxt[:, :n], rtol=1e-10)
    np.testing.assert_allclose(arrivals[:, K:], nxt[:, n:n + 2] + leads[:, None] * entry[:, K:], rtol=1e-10)


def test_sampled_steps_average_to_the_expected_step():
    rng = np.random.default_rng(5)
    R, entry = random_rates(rng, D=1, A=3)
    x = np.array([[[400, 300, 200], [100, 50, 80], [60, 0, 10]]])
    reps = 400
    Rr, er = np.repeat(R, reps, 0), np.repeat(entry, reps, 0)
    xr, lr = np.repeat(x, reps, 0), np.full(reps, 250)
    x1, arr = chain.step_sampled(np.random.default_rng(6), Rr, er, xr, lr)
    e1, earr = chain.step_expected(R, entry, x.astype(float), np.array([250.0]))
    assert x1.sum() + arr[:, -2:].sum() == reps * (x.sum() + 250)       # leads are conserved
    se = np.sqrt(e1[0] + 1) / np.sqrt(reps)
    assert np.all(np.abs(x1.mean(0) - e1[0]) < 5 * se + 1e-9)
    assert np.all(np.abs(arr.mean(0) - earr[0]) < 5 * np.sqrt(earr[0] + 1) / np.sqrt(reps))


def test_non_monotone_rates_are_rejected():
    R, entry = random_rates(np.random.default_rng(7), A=1)
    R[:, 1, 0, 0] += 0.1
    R[:, 1, 0] /= R[:, 1, 0].sum(-1, keepdims=True)
    with pytest.raises(Exception, match="monotone"):
        chain.check_rates(R, entry)
