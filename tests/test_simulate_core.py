"""Tests of the shared simulation engine: argument normalisation, Monte Carlo and expected runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models import chain
from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import core
from funnel_models.simulate.core import (calendar_months, expected_run, new_leads_vector, observed_counts,
                                         pipeline_state, sampled_run, season_months, synthetic_posterior)
from simulate_oracle import aged, dense_wins


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    return d, d.truth.posterior(), derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)


def months_of(H: int) -> np.ndarray:
    return calendar_months(None, H)


def wins_by_matrix_power(P: np.ndarray, x0: np.ndarray, leads: np.ndarray, entry: np.ndarray, H: int) -> np.ndarray:
    """Expected wins per month from powers of a memoryless matrix (independent of the engine)."""
    K = P.shape[0] - 2
    out = np.zeros(H)
    for m in range(1, H + 1):
        won_by = lambda t: np.linalg.matrix_power(P, t)[:, K] if t >= 0 else np.zeros(K + 2)  # noqa: E731
        out[m - 1] = x0 @ (won_by(m) - won_by(m - 1))
        for j in range(1, m + 1):   # cohort entering in month j, in month m it has made m - j moves
            out[m - 1] += leads[j - 1] * (entry @ (won_by(m - j) - (won_by(m - j - 1) if m > j else 0)))
    return out


def test_pipeline_state_forms_agree(demo):
    d, post, pipe = demo
    vc = pipe["stage"].value_counts()
    expect = np.array([vc.get(s, 0) for s in post.stages], dtype=float)[:, None]
    np.testing.assert_array_equal(pipeline_state(post, pipe), expect)          # one age: all at age 0
    np.testing.assert_array_equal(pipeline_state(post, vc.to_dict()), expect)
    np.testing.assert_array_equal(pipeline_state(post, vc), expect)
    counts_frame = pd.DataFrame({"stage": list(vc.index), "count": vc.to_numpy()})
    np.testing.assert_array_equal(pipeline_state(post, counts_frame), expect)
    np.testing.assert_array_equal(pipeline_state(post, None), np.zeros((post.n_stages, 1)))


def test_pipeline_state_by_age(demo):
    _, truth, pipe = demo
    post = aged(truth, 4)
    x = pipeline_state(post, pipe)
    assert x.shape == (post.n_stages, 4) and x.sum() == len(pipe)
    for k, s in enumerate(post.stages):                     # independent count per (stage, age bucket)
        ages = pipe.loc[pipe["stage"] == s, "age_months"].to_numpy()
        want = [np.sum(ages == a) for a in range(3)] + [np.sum(ages >= 3)]
        np.testing.assert_array_equal(x[k], want)
    assert x[:, 1:].sum() > 0                               # the demo pipeline has old leads
    # no age column: every lead at age 0 (documented); counts at given ages
    np.testing.assert_array_equal(pipeline_state(post, pipe.drop(columns="age_months"))[:, 1:], 0)
    by_age = pd.DataFrame({"stage": ["NEGO", "NEGO", "LEAD"], "age_months": [0, 7, 1], "count": [2, 3, 4]})
    got = pipeline_state(post, by_age)
    assert got[post.stage_index("NEGO")].tolist() == [2, 0, 0, 3] and got[0].tolist() == [0, 4, 0, 0]


@pytest.mark.parametrize("bad, words", [
    ({"NOPE": 3}, "unknown stage code"),
    ({"WON": 3}, "closed state"),
    ({"LEAD": -1}, ">= 0"),
    ({"LEAD": 1.5}, "whole numbers"),
    ({"LEAD": "x"}, "must be a number"),
    ([1, 2, 3], "must be a DataFrame"),
    (pd.DataFrame({"x": [1]}), "'stage' column"),
    (pd.DataFrame({"stage": ["LEAD", "MQL"], "age_months": [0, -2]}), "row 1"),
])
def test_pipeline_state_errors(demo, bad, words):
    _, post, _ = demo
    with pytest.raises(SimulationError, match=words):
        pipeline_state(post, bad)


def test_observed_counts_accept_closed_states(demo):
    _, post, _ = demo
    got = observed_counts(post, {"LEAD": 3, "WON": 2, "LOST": 1})
    assert got.tolist() == [3, 0, 0, 0, 0, 0, 2, 1]
    with pytest.raises(SimulationError, match="unknown stage"):
        observed_counts(post, {"XX": 1})


def test_new_leads_vector():
    np.testing.assert_array_equal(new_leads_vector(5, 3), [5, 5, 5])
    np.testing.assert_array_equal(new_leads_vector([1, 2, 3], 3), [1, 2, 3])
    assert new_leads_vector(np.ones((7, 3)), 3).shape == (7, 3)        # inflow draws
    for bad in ([1, 2], -1, [1, np.nan, 2], "history", np.ones((7, 2)), -np.ones((2, 3))):
        with pytest.raises(SimulationError):
            new_leads_vector(bad, 3)


def test_calendar_months_and_season_needs_start(demo):
    _, truth, _ = demo
    assert calendar_months("2025-11-15", 4).tolist() == [12, 1, 2, 3]
    seasonal = PosteriorFunnel(truth.stages, truth.rates, truth.entry,
                               season=np.zeros((1, 12, truth.n_stages + 1, truth.n_stages + 2)))
    with pytest.raises(SimulationError, match="start="):
        season_months(seasonal, None, 3)
    with pytest.raises(SimulationError, match="cut-off month"):
        calendar_months("not a date", 3)


def test_expected_run_matches_matrix_powers(demo):
    _, post, pipe = demo
    x0 = pipeline_state(post, pipe)
    leads = np.array([100.0, 0, 50, 200, 10, 0, 30])
    ent, opened, _ = expected_run(post, x0, leads, months_of(leads.size))
    P = np.zeros((post.n_stages + 2,) * 2)
    P[:post.n_stages] = post.rates[0, :, 0]
    P[post.n_stages:, post.n_stages:] = np.eye(2)
    ref = wins_by_matrix_power(P, np.append(x0[:, 0], [0, 0]), leads, post.entry[0], leads.size)
    np.testing.assert_allclose(ent[0, :, post.n_stages], ref, rtol=1e-10)
    # conservation: open + closed = pipeline + all new leads so far
    np.testing.assert_allclose(opened[0].sum(-1), x0.sum() + np.cumsum(leads))


def test_expected_run_with_ages_matches_dense_oracle(demo):
    _, truth, pipe = demo
    post = aged(synthetic_posterior(truth, 5, concentration=80.0, seed=2), 5)
    x0 = pipeline_state(post, pipe)
    leads = np.array([100.0, 0, 50, 200, 10, 0, 30])
    H = leads.size
    ent, _, _ = expected_run(post, x0, leads, months_of(H))
    rates, entry = post.month_path(months_of(H))
    np.testing.assert_allclose(ent[..., post.n_stages], dense_wins(rates, entry, x0, leads), rtol=1e-10)


def test_new_leads_can_win_in_entry_month_pipeline_only_from_month_1():
    P = np.array([[0.5, 0.5, 0.0], [0, 1, 0], [0, 0, 1.0]])
    post = PosteriorFunnel.from_point(["A"], P, np.array([0.6, 0.4, 0.0]))
    ent, _, _ = expected_run(post, np.array([[10.0]]), np.array([100.0, 0.0]), months_of(2))
    # month 1: 10 * 0.5 from the pipeline + 100 * 0.4 at entry; month 2: (5 + 60) * 0.5
    np.testing.assert_allclose(ent[0, :, 1], [5 + 40, 32.5])


@pytest.mark.parametrize("n_ages", [1, 4])
def test_simulation_conserves_and_matches_expectation(demo, n_ages):
    _, truth, pipe = demo
    base = aged(truth, n_ages) if n_ages > 1 else truth
    post = synthetic_posterior(base, 3000)
    x0 = pipeline_state(base, pipe)
    leads = np.full(8, 250)
    ent, opened, _ = sampled_run(post, x0, leads, months_of(8), np.random.default_rng(5))
    assert np.all(opened.sum(-1) == x0.sum() + np.cumsum(leads)[None, :])
    exp_ent, _, _ = expected_run(base, x0, leads.astype(float), months_of(8))
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
    ent, opened, _ = sampled_run(post, np.array([[n], [0]]), np.zeros(1, int), months_of(1), np.random.default_rng(0))
    counts = opened[:, 0, :]
    np.testing.assert_allclose(counts.mean(0), n * row, atol=4 * np.sqrt(n * row * (1 - row) / 20000).max())
    np.testing.assert_allclose(counts.var(0), n * row * (1 - row), rtol=0.05)
    cov01 = np.cov(counts[:, 0], counts[:, 1])[0, 1]
    assert cov01 == pytest.approx(-n * row[0] * row[1], rel=0.1)


@pytest.mark.parametrize("n_ages, shocks", [(1, False), (4, True)])
def test_common_random_numbers_isolate_stages(demo, n_ages, shocks):
    _, truth, pipe = demo
    K = truth.n_stages
    kw = {"shock_sd": np.full((1, K + 1), 0.3)} if shocks else {}
    base = aged(truth, n_ages, **kw) if n_ages > 1 else truth
    post = synthetic_posterior(base, 500)
    x0 = pipeline_state(base, pipe)
    k = truth.stage_index("LEAD")
    changed = post.adjust(conversion={"LEAD": 1.3})
    a, _, _ = sampled_run(post, x0, np.full(3, 100), months_of(3), np.random.default_rng(11))
    b, _, _ = sampled_run(changed, x0, np.full(3, 100), months_of(3), np.random.default_rng(11))
    # only LEAD's rates changed: in month 1 every other stage's flows (and the shocks) are identical
    np.testing.assert_array_equal(a[:, 0, k + 3:K + 1], b[:, 0, k + 3:K + 1])   # DEMO..WON
    assert not np.array_equal(a[:, 0, K + 1], b[:, 0, K + 1])   # LEAD losses did change
    c, _, _ = sampled_run(post, x0, np.full(3, 100), months_of(3), np.random.default_rng(12))
    assert not np.array_equal(a, c)


def test_step_sampled_streams_per_stage():
    """chain.step_sampled with one stream per stage: a stage's draws depend on its own stream only."""
    rng = np.random.default_rng(1)
    R = np.zeros((200, 2, 3, 4))
    for k in range(2):
        dest = [k, 2, 3] + ([1] if k == 0 else [])
        for a in range(3):
            R[:, k, a, dest] = rng.dirichlet(np.ones(len(dest)), size=200)
    entry = np.tile([0.7, 0.1, 0.1, 0.1], (200, 1))
    x = np.tile(np.array([[5, 3, 2], [4, 0, 6]]), (200, 1, 1))
    streams = lambda: np.random.default_rng(3).spawn(3)  # noqa: E731
    x1, a1 = chain.step_sampled(streams(), R, entry, x, np.full(200, 10))
    R2 = R.copy()
    R2[:, 0, :, 0], R2[:, 0, :, 1] = R[:, 0, :, 1], R[:, 0, :, 0]     # stage 0 changes: swap stay / move on
    x2, a2 = chain.step_sampled(streams(), R2, entry, x, np.full(200, 10))
    np.testing.assert_array_equal(x1[:, 1, 1:], x2[:, 1, 1:])                 # stage 1's stayers
    assert not np.array_equal(x1[:, 0], x2[:, 0])
    with pytest.raises(Exception, match="one generator"):
        chain.step_sampled(np.random.default_rng(0).spawn(2), R, entry, x, np.zeros(200))


def test_synthetic_posterior_is_centred(demo):
    _, truth, _ = demo
    post = synthetic_posterior(truth, 4000, concentration=300.0, seed=1)
    np.testing.assert_allclose(post.rates.mean(0), truth.rates[0], atol=0.01)
    assert post.rates.std(0).max() > 0
    same = synthetic_posterior(truth, 7)
    assert np.all(same.rates == truth.rates[0])
    old = aged(truth, 5, shock_sd=np.full((1, truth.n_stages + 1), 0.2))
    many = synthetic_posterior(old, 300, concentration=500.0, seed=2)
    assert many.n_ages == 5 and many.shock_sd.shape == (300, truth.n_stages + 1)
    np.testing.assert_allclose(many.rates.mean(0), old.rates[0], atol=0.02)
    assert np.all((many.rates > 0) == (old.rates[0] > 0))     # impossible moves stay impossible
    assert core.sims_for(7, None, 1000) == 143


def test_aged_posterior_rows(demo):
    _, truth, _ = demo
    old = aged(truth, 4, decay=0.5)
    K = truth.n_stages
    for k in range(K):
        for a in range(4):
            row = truth.rates[0, k, 0].copy()
            leave = np.delete(np.arange(K + 2), k)
            want = row.copy()
            want[leave] = row[leave] * 0.5 ** a
            want[k] = 1.0 - want[leave].sum()
            np.testing.assert_allclose(old.rates[0, k, a], want, atol=1e-14)
    same = aged(truth, 3, decay=1.0)                      # no decay: the memoryless forecast
    x0 = np.zeros((K, 3))
    x0[:, 0] = 10.0
    got = expected_run(same, x0, np.full(6, 50.0), months_of(6))[0]
    want = expected_run(truth, x0[:, :1], np.full(6, 50.0), months_of(6))[0]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(SimulationError, match="decay"):
        aged(truth, 3, decay=1.5)


def test_a_common_month_shock_moves_every_stage_together(demo):
    _, truth, _ = demo
    K = truth.n_stages
    post = synthetic_posterior(truth, 4000).take(np.arange(4000))
    post = PosteriorFunnel(post.stages, post.rates, post.entry, common_sd=np.full(4000, 0.4))
    assert post.has_shocks
    rates, entry = post.month_path([3], np.random.default_rng(4))
    k = np.arange(K - 1)          # every open stage that has a next one: log-odds of moving on vs staying
    shift = np.log(rates[:, 0, k, 0, k + 1] / rates[:, 0, k, 0, k]) - np.log(truth.rates[0, k, 0, k + 1] /
                                                                           truth.rates[0, k, 0, k])
    entry_shift = np.log(entry[:, 0, 1] / entry[:, 0, 0]) - np.log(truth.entry[0, 1] / truth.entry[0, 0])
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1], shift.shape), atol=1e-9)   # one shock for all
    np.testing.assert_allclose(entry_shift, shift[:, 0], atol=1e-9)
    assert shift[:, 0].std() == pytest.approx(0.4, rel=0.05)
    # with a shock per row as well, rows agree only through the common part: corr = 0.4^2 / (0.4^2 + 0.3^2)
    both = PosteriorFunnel(post.stages, post.rates, post.entry, common_sd=np.full(4000, 0.4),
                           shock_sd=np.full((4000, K + 1), 0.3))
    rates, _ = both.month_path([3], np.random.default_rng(5))
    s = np.log(rates[:, 0, k, 0, k + 1] / rates[:, 0, k, 0, k])
    assert np.corrcoef(s[:, 0], s[:, 1])[0, 1] == pytest.approx(0.16 / (0.16 + 0.18), abs=0.05)
