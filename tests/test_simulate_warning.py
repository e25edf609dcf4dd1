"""Tests of early_warning() and inflow_effect(): predictive intervals, flags, projections on wins."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.data import derive
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import early_warning, inflow_effect, synthetic_posterior
from funnel_models.simulate.core import calendar_months, pipeline_state, sampled_run
from simulate_oracle import aged, dense, month_matrices


@pytest.fixture(scope="module")
def setup():
    post = demo_data().truth.posterior()
    prev = {"LEAD": 300, "MQL": 280, "SQL": 300, "DEMO": 210, "PROP": 180, "NEGO": 75}
    return post, prev, 250


def matrix(post):
    """The memoryless (K+2, K+2) matrix of a one-age posterior's first draw."""
    K = post.n_stages
    P = np.zeros((K + 2, K + 2))
    P[:K], P[K:, K:] = post.rates[0, :, 0], np.eye(2)
    return P


def expected_month(post, prev, L):
    K = post.n_stages
    P = matrix(post)
    x = np.array([prev[s] for s in post.stages] + [0, 0], float)
    nxt = x @ P + L * post.entry[0]
    closed = x[:K] @ P[:K, K:] + L * post.entry[0, K:]
    return np.concatenate([nxt[:K], closed])


def test_expected_matches_exact_and_no_flags_at_expectation(setup):
    post, prev, L = setup
    exp = expected_month(post, prev, L)
    obs = dict(zip(post.states, np.rint(exp)))
    res = early_warning(post, prev, obs, L)
    se = res.predicted.std(0, ddof=1) / np.sqrt(res.predicted.shape[0])
    assert np.all(np.abs(res.stages["expected"].to_numpy() - exp) < 3 * se + 1e-12)
    assert res.flagged == []
    assert (res.stages["lo"] <= res.stages["expected"]).all() and (res.stages["expected"] <= res.stages["hi"]).all()


def test_flags_low_and_high_and_projection(setup):
    post, prev, L = setup
    exp = expected_month(post, prev, L)
    obs = dict(zip(post.stages, np.rint(exp[:post.n_stages])))
    obs["PROP"] = obs["PROP"] - 60
    obs["LEAD"] = obs["LEAD"] + 80
    res = early_warning(post, prev, obs, L, horizon=4)
    tab = res.stages.set_index("stage")
    assert tab.loc["PROP", "flag"] == "low" and tab.loc["LEAD", "flag"] == "high"
    assert set(res.flagged) == {"PROP", "LEAD"}
    assert np.isnan(tab.loc["WON", "observed"]) and tab.loc["WON", "flag"] == ""
    # projection is linear in the state gap: difference = gap @ (P^h - P^(h-1))[:, WON]
    K = post.n_stages
    gap = np.append(np.array([obs[s] for s in post.stages]) - exp[:K], [0.0, 0.0])
    P = matrix(post)
    want = [gap @ (np.linalg.matrix_power(P, h) - np.linalg.matrix_power(P, h - 1))[:, K] for h in range(1, 5)]
    np.testing.assert_allclose(res.projection["difference_mean"], want, atol=1e-9)
    assert res.projection["difference_mean"].iloc[0] < 0   # fewer PROP deals, fewer wins next month


def test_flag_rate_is_calibrated(setup):
    """Observed months simulated from the truth are flagged at most about 10% of the time (90% interval)."""
    post, prev, L = setup
    n = 150
    x0 = pipeline_state(post, prev)
    ent, state, _ = sampled_run(synthetic_posterior(post, n), x0, np.array([L]), calendar_months(None, 1),
                                np.random.default_rng(99))
    K = post.n_stages
    flags = 0
    for i in range(n):
        obs = dict(zip(post.states, np.concatenate([state[i, 0, :K], ent[i, 0, K:]])))
        flags += len(early_warning(post, prev, obs, L, seed=i, sims_per_draw=1000).flagged)
    rate = flags / (n * (K + 2))
    assert 0.03 <= rate <= 0.13, rate   # discrete counts: at most 10% in expectation


def test_stage_counts_frame_input(setup):
    post, prev, L = setup
    exp = expected_month(post, prev, L)
    frame = pd.DataFrame({"month": pd.Timestamp("2026-01-01"), "stage": list(post.states), "count": np.rint(exp)})
    res = early_warning(post, prev, frame, L)
    assert res.flagged == [] and not res.stages["observed"].isna().any()
    no_closed = frame[~frame["stage"].isin(["WON", "LOST"])]
    res2 = early_warning(post, prev, no_closed, L)
    assert res2.stages["observed"].isna().sum() == 2
    two_months = pd.concat([frame, frame.assign(month=pd.Timestamp("2026-02-01"))])
    with pytest.raises(SimulationError, match="several months"):
        early_warning(post, prev, two_months, L)


def test_errors(setup):
    post, prev, L = setup
    with pytest.raises(SimulationError, match="misses open stage"):
        early_warning(post, prev, {"LEAD": 3}, L)
    with pytest.raises(SimulationError, match="new_leads_this_month"):
        early_warning(post, prev, prev, -3)
    with pytest.raises(SimulationError, match="unknown stage"):
        early_warning(post, {"XX": 1}, prev, L)


def test_previous_state_by_age_matches_dense_oracle(setup):
    post, _, L = setup
    d = demo_data()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    old = aged(post, 4, decay=0.5)
    x0 = pipeline_state(old, pipe)
    K, A, n = old.n_stages, 4, old.n_stages * 4
    P = dense(old.rates, cold=False)[0]
    s = np.append(x0.reshape(n), [0, 0, 0]) @ P
    s[[k * A for k in range(K)]] += L * old.entry[0, :K]
    exp = np.concatenate([s[:n].reshape(K, A).sum(1), s[n:n + 2] + L * old.entry[0, K:]])
    obs = dict(zip(old.states, np.rint(exp)))
    res = early_warning(old, pipe, obs, L, horizon=3)
    se = res.predicted.std(0, ddof=1) / np.sqrt(res.predicted.shape[0])
    assert np.all(np.abs(res.stages["expected"].to_numpy() - exp) < 4 * se + 1e-12)
    assert res.flagged == []
    # ages matter: the same stage counts at age 0 predict more wins (young leads move more)
    young = early_warning(old, pipe["stage"].value_counts(), obs, L, horizon=3)
    assert young.stages.set_index("stage").loc["WON", "expected"] > 1.1 * res.stages.set_index("stage").loc["WON", "expected"]
    # projection: observed minus expected state spread over ages like the expected state
    np.testing.assert_allclose(res.projection["difference_mean"], res.projection["wins_from_observed"]
                               - res.projection["wins_from_expected"], atol=1e-9)


def test_month_shocks_widen_the_predictive(setup):
    post, prev, L = setup
    K = post.n_stages
    wild = PosteriorFunnel(post.stages, post.rates, post.entry, shock_sd=np.full((1, K + 1), 0.4))
    obs = dict(zip(post.states, np.rint(expected_month(post, prev, L))))
    calm = early_warning(post, prev, obs, L).stages
    wide = early_warning(wild, prev, obs, L).stages
    assert np.all((wide["hi"] - wide["lo"]).to_numpy()[:K] > (calm["hi"] - calm["lo"]).to_numpy()[:K])


def test_inflow_effect_matches_dense_oracle(setup):
    post, prev, _ = setup
    old = aged(post, 3, decay=0.6)
    H = 6
    fx = inflow_effect(old, prev, observed_leads=150, expected_leads=250, horizon=H, start="2025-12-01")
    # P(a lead entering in month 1 is won in month h), dense matrices
    K, A, n = old.n_stages, 3, old.n_stages * 3
    P = month_matrices(old.month_path(np.ones(H, dtype=int))[0])[0]
    s = np.zeros(n + 3)
    s[[k * A for k in range(K)]] = old.entry[0, :K]
    s[n:n + 2] = old.entry[0, K:]
    won = [s[n]]
    for h in range(1, H):
        s = s @ P[h]
        won.append(s[n] - sum(won))
    np.testing.assert_allclose(fx["difference_mean"], -100 * np.array(won), atol=1e-9)
    assert list(fx["month"]) == list(pd.date_range("2026-01-01", periods=H, freq="MS"))
    np.testing.assert_allclose(fx["cumulative_difference_mean"], np.cumsum(fx["difference_mean"]))
    np.testing.assert_allclose(fx["wins_observed_inflow"] - fx["wins_expected_inflow"], fx["difference_mean"])
    lag = int(np.argmin(fx["difference_mean"]))
    assert lag >= 3                                   # the demo's fewest sales come months later
    assert (fx["p_fewer"].iloc[lag:] == 1.0).all()
    # inflow draws: the expectation is uncertain, so the effect has an interval
    draws = np.random.default_rng(0).gamma(4.0, 250 / 4.0, 2000)
    wide = inflow_effect(old, prev, 150, draws, H)
    assert (wide["difference_hi"] - wide["difference_lo"]).iloc[lag] > 10 * (fx["difference_hi"] - fx["difference_lo"]).iloc[lag]
    assert 0.5 < wide["p_fewer"].iloc[lag] < 1.0
    paths = np.column_stack([draws, np.zeros((draws.size, H - 1))])     # (n, H) inflow draws: month 1 counts
    pd.testing.assert_frame_equal(inflow_effect(old, prev, 150, paths, H), wide)
    with pytest.raises(SimulationError, match="observed_leads"):
        inflow_effect(old, prev, -1, 250, H)
