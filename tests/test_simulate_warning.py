"""Tests of early_warning(): predictive intervals, flags and the projection on wins."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.simulate import early_warning
from funnel_models.simulate.core import simulate_chain


@pytest.fixture(scope="module")
def setup():
    post = demo_data().truth.posterior()
    prev = {"LEAD": 300, "MQL": 280, "SQL": 300, "DEMO": 210, "PROP": 180, "NEGO": 75}
    return post, prev, 250


def expected_month(post, prev, L):
    K = post.n_stages
    x = np.array([prev[s] for s in post.stages] + [0, 0], float)
    nxt = x @ post.P[0] + L * post.entry[0]
    closed = x[:K] @ post.P[0, :K, K:] + L * post.entry[0, K:]
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
    P = post.P[0]
    want = [gap @ (np.linalg.matrix_power(P, h) - np.linalg.matrix_power(P, h - 1))[:, K] for h in range(1, 5)]
    np.testing.assert_allclose(res.projection["difference_mean"], want, atol=1e-9)
    assert res.projection["difference_mean"].iloc[0] < 0   # fewer PROP deals, fewer wins next month


def test_flag_rate_is_calibrated(setup):
    """Observed months simulated from the truth are flagged at most about 10% of the time (90% interval)."""
    post, prev, L = setup
    n = 150
    x0 = np.array([prev[s] for s in post.stages] + [0, 0])
    ent, state = simulate_chain(np.repeat(post.P, n, 0), np.repeat(post.entry, n, 0), x0, np.array([L]), 1,
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
