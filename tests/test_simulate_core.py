"""Tests of the shared simulation engine: argument normalisation, multinomial chain, exact expectation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import core
from funnel_models.simulate.core import (expected_chain, intervals, new_leads_vector, pipeline_counts,
                                         set_conversion, set_expected_stall, simulate_chain, synthetic_posterior)


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    return d, d.truth.posterior(), derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)


def wins_by_matrix_power(P: np.ndarray, x0: np.ndarray, leads: np.ndarray, entry: np.ndarray, H: int) -> np.ndarray:
    """Expected wins per month from matrix powers (independent of expected_chain)."""
    K = P.shape[0] - 2
    out = np.zeros(H)
    for m in range(1, H + 1):
        won_by = lambda t: np.linalg.matrix_power(P, t)[:, K] if t >= 0 else np.zeros(K + 2)  # noqa: E731
        out[m - 1] = x0 @ (won_by(m) - won_by(m - 1))
        for j in range(1, m + 1):   # cohort entering in month j, in month m it has made m - j moves
            out[m - 1] += leads[j - 1] * (entry @ (won_by(m - j) - (won_by(m - j - 1) if m > j else 0)))
    return out


def test_pipeline_counts_forms_agree(demo):
    d, post, pipe = demo
    from_frame = pipeline_counts(post, pipe)
    vc = pipe["stage"].value_counts()
    expect = np.array([vc.get(s, 0) for s in post.stages] + [0, 0], dtype=float)
    np.testing.assert_array_equal(from_frame, expect)
    np.testing.assert_array_equal(pipeline_counts(post, vc.to_dict()), expect)
    np.testing.assert_array_equal(pipeline_counts(post, vc), expect)
    counts_frame = pd.DataFrame({"stage": list(vc.index), "count": vc.to_numpy()})
    np.testing.assert_array_equal(pipeline_counts(post, counts_frame), expect)
    np.testing.assert_array_equal(pipeline_counts(post, None), np.zeros(post.n_stages + 2))


@pytest.mark.parametrize("bad, words", [
    ({"NOPE": 3}, "unknown stage code"),
    ({"WON": 3}, "closed state"),
    ({"LEAD": -1}, ">= 0"),
    ({"LEAD": 1.5}, "whole numbers"),
    ({"LEAD": "x"}, "must be a number"),
    ([1, 2, 3], "must be a DataFrame"),
    (pd.DataFrame({"x": [1]}), "'stage' column"),
])
def test_pipeline_counts_errors(demo, bad, words):
    _, post, _ = demo
    with pytest.raises(SimulationError, match=words):
        pipeline_counts(post, bad)


def test_new_leads_vector():
    np.testing.assert_array_equal(new_leads_vector(5, 3), [5, 5, 5])
    np.testing.assert_array_equal(new_leads_vector([1, 2, 3], 3), [1, 2, 3])
    for bad in ([1, 2], -1, [1, np.nan, 2], "history"):
        with pytest.raises(SimulationError):
            new_leads_vector(bad, 3)


def test_expected_chain_matches_matrix_powers(demo):
    _, post, pipe = demo
    x0 = pipeline_counts(post, pipe)
    leads = np.array([100.0, 0, 50, 200, 10, 0, 30])
    ent, state = expected_chain(post.P, post.entry, x0, leads, leads.size)
    ref = wins_by_matrix_power(post.P[0], x0, leads, post.entry[0], leads.size)
    np.testing.assert_allclose(ent[0, :, post.n_stages], ref, rtol=1e-10)
    # conservation: open + closed = pipeline + all new leads so far
    np.testing.assert_allclose(state[0].sum(-1), x0.sum() + np.cumsum(leads))


def test_new_leads_can_win_in_entry_month_pipeline_only_from_month_1():
    P = np.array([[0.5, 0.5, 0.0], [0, 1, 0], [0, 0, 1.0]])
    post = PosteriorFunnel.from_point(["A"], P, np.array([0.6, 0.4, 0.0]))
    ent, _ = expected_chain(post.P, post.entry, np.array([10.0, 0, 0]), np.array([100.0, 0.0]), 2)
    # month 1: 10 * 0.5 from the pipeline + 100 * 0.4 at entry; month 2: (5 + 60) * 0.5
    np.testing.assert_allclose(ent[0, :, 1], [5 + 40, 32.5])


def test_simulation_conserves_and_matches_expectation(demo):
    _, truth, pipe = demo
    post = synthetic_posterior(truth, 3000)
    x0 = pipeline_counts(truth, pipe)
    leads = np.full(8, 250)
    ent, state = simulate_chain(post.P, post.entry, x0, leads, 8, np.random.default_rng(5))
    assert np.all(state.sum(-1) == x0.sum() + np.cumsum(leads)[None, :])
    # entries of a month = increase of the state + leads that left it
    exp_ent, _ = expected_chain(post.P, post.entry, x0, leads.astype(float), 8)
    mean = ent.mean(0)
    se = ent.std(0, ddof=1) / np.sqrt(ent.shape[0])
    z = (mean - exp_ent[0]) / np.where(se > 0, se, 1.0)
    assert np.all(np.abs(z) < 4.0), z   # 64 cells: |z| < 4 each
    assert np.all(se[exp_ent[0] == 0] == 0)


def test_multinomial_rows_have_multinomial_variance():
    # one month from one stage: counts must be Multinomial(n, row)
    row = np.array([0.2, 0.3, 0.1, 0.4])
    P = np.zeros((4, 4))
    P[0] = row
    P[1] = [0, 0.5, 0.5, 0]
    P[2, 2] = P[3, 3] = 1
    post = synthetic_posterior(PosteriorFunnel.from_point(["A", "B"], P, np.array([1.0, 0, 0, 0])), 20000)
    n = 50
    ent, state = simulate_chain(post.P, post.entry, np.array([n, 0, 0, 0]), np.zeros(1, int), 1,
                                np.random.default_rng(0))
    counts = state[:, 0, :]
    np.testing.assert_allclose(counts.mean(0), n * row, atol=4 * np.sqrt(n * row * (1 - row) / 20000).max())
    np.testing.assert_allclose(counts.var(0), n * row * (1 - row), rtol=0.05)
    cov01 = np.cov(counts[:, 0], counts[:, 1])[0, 1]
    assert cov01 == pytest.approx(-n * row[0] * row[1], rel=0.1)


def test_common_random_numbers_isolate_rows(demo):
    _, truth, pipe = demo
    post = synthetic_posterior(truth, 500)
    x0 = pipeline_counts(truth, pipe)
    k = truth.stage_index("LEAD")
    P2 = set_conversion(post.P, k, np.full(500, 0.9))
    a, _ = simulate_chain(post.P, post.entry, x0, np.full(3, 100), 3, np.random.default_rng(11))
    b, _ = simulate_chain(P2, post.entry, x0, np.full(3, 100), 3, np.random.default_rng(11))
    # only LEAD's own row changed: in month 1 every other flow is identical
    K = truth.n_stages
    np.testing.assert_array_equal(a[:, 0, k + 3:K + 1], b[:, 0, k + 3:K + 1])   # DEMO..WON
    assert not np.array_equal(a[:, 0, K + 1], b[:, 0, K + 1])   # LEAD losses did change
    c, _ = simulate_chain(post.P, post.entry, x0, np.full(3, 100), 3, np.random.default_rng(12))
    assert not np.array_equal(a, c)


def test_set_conversion_and_stall_match_adjust(demo):
    _, truth, _ = demo
    post = synthetic_posterior(truth, 50, concentration=100.0, seed=3)
    k = post.stage_index("DEMO")
    conv = post.conversion()[:, k]
    P = set_conversion(post.P, k, conv * 1.1)
    np.testing.assert_allclose(P, post.adjust(conversion={"DEMO": 1.1}).P, atol=1e-12)
    target = np.linspace(0.3, 0.9, 50)
    got = PosteriorFunnel(post.stages, set_conversion(post.P, k, target), post.entry).conversion()[:, k]
    np.testing.assert_allclose(got, target, atol=1e-12)
    E = post.expected_stall()[:, k]
    P2 = set_expected_stall(post.P, k, E * 0.7)
    np.testing.assert_allclose(P2, post.adjust(stall={"DEMO": 0.7}).P, atol=1e-12)
    np.testing.assert_allclose(P2.sum(-1), 1.0)


def test_intervals_quantiles():
    x = np.arange(1001.0)[:, None] * np.array([1.0, 2.0])
    out = intervals(x, (0.5, 0.9), index=["a", "b"], name="what")
    assert list(out.columns) == ["what", "mean", "sd", "lo_50", "hi_50", "lo_90", "hi_90"]
    np.testing.assert_allclose(out["lo_90"], [50.0, 100.0])
    np.testing.assert_allclose(out["hi_50"], [750.0, 1500.0])
    with pytest.raises(SimulationError):
        intervals(x, (1.2,))


def test_synthetic_posterior_is_centred(demo):
    _, truth, _ = demo
    post = synthetic_posterior(truth, 4000, concentration=300.0, seed=1)
    np.testing.assert_allclose(post.P.mean(0), truth.P[0], atol=0.01)
    assert post.P.std(0).max() > 0
    same = synthetic_posterior(truth, 7)
    assert np.all(same.P == truth.P[0])
    assert core.sims_for(7, None, 1000) == 143
