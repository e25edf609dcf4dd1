"""Tests of what_if(): common random numbers, exact expected change, leads needed base vs scenario."""
from __future__ import annotations

import math

import numpy as np
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.simulate import expected_wins, synthetic_posterior, what_if


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    return d.truth.posterior(), derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)


def test_no_change_gives_zero_difference(demo):
    truth, pipe = demo
    res = what_if(truth, pipeline=pipe, new_leads=250, horizon=4, seed=1)
    assert np.all(res.wins_change == 0) and np.all(res.expected_change == 0)


def test_conversion_change_matches_exact_expectation(demo):
    truth, pipe = demo
    post = synthetic_posterior(truth, 1500)
    res = what_if(post, conversion={"PROP": 1.15}, pipeline=pipe, new_leads=250, horizon=6, seed=2)
    exact = expected_wins(post.adjust(conversion={"PROP": 1.15}), pipe, 250, 6) - expected_wins(post, pipe, 250, 6)
    np.testing.assert_allclose(res.expected_change, exact)
    assert np.all(exact[0] > 0)
    tot = res.wins_change.sum(1)
    assert abs(tot.mean() - exact[0].sum()) < 3 * tot.std(ddof=1) / np.sqrt(tot.size)
    # common random numbers: the change has less spread than two independent forecasts would
    # (coupling is exact where parameters agree and partial downstream of the changed row)
    indep_sd = np.sqrt(res.base.wins.sum(1).var() + res.scenario.wins.sum(1).var())
    assert tot.std() < indep_sd
    iv = res.intervals()
    assert set(iv["quantity"]) == {"wins_change", "expected_wins_change"}
    assert iv["month"].iloc[-1] == "total"


def test_upstream_change_leaves_first_month_wins_identical(demo):
    truth, pipe = demo
    # LEAD cannot reach WON within one month, so month-1 wins must be identical draw by draw
    res = what_if(truth, conversion={"LEAD": 1.3}, stall={"MQL": 0.5}, pipeline=pipe, new_leads=250, horizon=3, seed=4)
    assert np.all(res.wins_change[:, 0] == 0)
    assert np.any(res.wins_change[:, 1:] != 0)


def test_lead_multiplier_and_plan_question(demo):
    truth, pipe = demo
    target = math.ceil(1.2 * expected_wins(truth, pipe, 250, 12)[0].sum())
    res = what_if(truth, conversion={"DEMO": 1.2}, lead_multiplier=1.5, pipeline=pipe, new_leads=250,
                  horizon=12, target=target, seed=0)
    np.testing.assert_array_equal(res.scenario.new_leads, np.full(12, 375))
    assert res.leads_base is not None and res.leads_scenario is not None
    assert res.leads_scenario.leads < res.leads_base.leads
    assert res.p_hit_scenario > res.p_hit_base
    s = res.summary().set_index("metric")
    assert s.loc["leads needed", "change"] == res.leads_scenario.leads - res.leads_base.leads


def test_what_if_errors(demo):
    truth, pipe = demo
    with pytest.raises(SimulationError, match="unknown stage"):
        what_if(truth, conversion={"XX": 1.1}, pipeline=pipe, new_leads=10)
    with pytest.raises(SimulationError, match="lead_multiplier"):
        what_if(truth, lead_multiplier=-1, pipeline=pipe, new_leads=10)
    with pytest.raises(SimulationError, match="target"):
        what_if(truth, pipeline=pipe, new_leads=10, window=3)


def test_aged_shocked_scenario_keeps_common_random_numbers(demo):
    from simulate_oracle import aged
    truth, pipe = demo
    K = truth.n_stages
    old = aged(truth, 5, shock_sd=np.full((1, K + 1), 0.3))
    draws = np.random.default_rng(0).poisson(250, size=(300, 4))
    res = what_if(old, conversion={"LEAD": 1.3}, pipeline=pipe, new_leads=draws, horizon=4, seed=4,
                  sims_per_draw=500)
    assert np.all(res.wins_change[:, 0] == 0)                 # same shocks, inflow and draws where nothing changed
    assert np.any(res.wins_change[:, 1:] != 0)
    np.testing.assert_array_equal(res.base.inflow, res.scenario.inflow)
