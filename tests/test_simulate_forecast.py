"""Tests of forecast(), expected_wins(), default_target() and leads_from_history() against exact expectations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import (default_target, expected_wins, forecast, leads_from_history,
                                    synthetic_posterior)
from funnel_models.simulate.core import pipeline_state
from simulate_oracle import aged, dense_wins


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    return d, d.truth.posterior(), pipe, derive.transitions(snaps, d.spec)


def test_forecast_mean_matches_exact_expectation(demo):
    d, truth, pipe, tr = demo
    lead_rate = leads_from_history(tr)
    post = synthetic_posterior(truth, 2000)
    fc = forecast(post, pipe, lead_rate, horizon=9, seed=3)
    assert fc.wins.shape == (2000, 9) and fc.entries.shape == (2000, 9, truth.n_stages + 2)
    exact = expected_wins(truth, pipe, np.rint(lead_rate), 9)[0]
    se = fc.wins.std(0, ddof=1) / np.sqrt(fc.n_sims)
    assert np.all(np.abs(fc.wins.mean(0) - exact) < 3 * se), (fc.wins.mean(0), exact, se)
    tot = fc.wins.sum(1)
    assert abs(tot.mean() - exact.sum()) < 3 * tot.std(ddof=1) / np.sqrt(fc.n_sims)
    np.testing.assert_allclose(fc.expected_wins[0], exact)
    # every stage's entries too, not only wins
    se_all = fc.entries.std(0, ddof=1) / np.sqrt(fc.n_sims)
    z = (fc.entries.mean(0) - fc.expected[0]) / np.where(se_all > 0, se_all, 1)
    assert np.abs(z).max() < 4.0


def test_forecast_with_parameter_uncertainty_is_wider(demo):
    _, truth, pipe, _ = demo
    fixed = forecast(synthetic_posterior(truth, 1500), pipe, 250, horizon=6, seed=1)
    uncertain = forecast(synthetic_posterior(truth, 1500, concentration=50.0, seed=2), pipe, 250, horizon=6, seed=1)
    assert uncertain.wins.sum(1).std() > 1.2 * fixed.wins.sum(1).std()
    # the simulated mean is the average of the per-draw exact expectations
    exp_tot = uncertain.expected_wins.sum(1)
    tot = uncertain.wins.sum(1)
    assert abs(tot.mean() - exp_tot.mean()) < 3 * tot.std(ddof=1) / np.sqrt(tot.size)


def test_forecast_small_posterior_gets_many_futures_and_revenue(demo):
    _, truth, pipe, _ = demo
    fc = forecast(truth, pipe, 200, horizon=4, seed=0, start="2025-12-31")
    assert fc.n_sims >= 1000 and np.all(fc.draw_index == 0)
    np.testing.assert_allclose(fc.revenue, fc.wins * truth.deal_value[0])
    assert list(fc.months) == list(pd.date_range("2026-01-01", periods=4, freq="MS"))
    iv = fc.intervals(levels=(0.5, 0.8))
    assert {"month", "quantity", "mean", "lo_50", "hi_50", "lo_80", "hi_80"} <= set(iv.columns)
    assert {"wins", "revenue", "cumulative_wins", "entries_WON", "open_LEAD"} <= set(iv["quantity"])
    w = iv[iv["quantity"] == "wins"]
    assert (w["lo_80"] <= w["lo_50"]).all() and (w["lo_50"] <= w["mean"]).all() and (w["mean"] <= w["hi_80"]).all()
    cum = iv[iv["quantity"] == "cumulative_wins"]["mean"].to_numpy()
    np.testing.assert_allclose(cum, np.cumsum(fc.wins.mean(0)))


def test_forecast_reproducible_and_age_unused_when_memoryless(demo):
    _, truth, pipe, _ = demo
    a = forecast(truth, pipe, 100, horizon=3, seed=9)
    b = forecast(truth, pipe.assign(age_months=pipe["age_months"] + 5), 100, horizon=3, seed=9)
    c = forecast(truth, pipe, 100, horizon=3, seed=10)
    np.testing.assert_array_equal(a.entries, b.entries)        # one age: age cannot matter
    ages = a.meta["pipeline_mean_age_months"]
    assert b.meta["pipeline_mean_age_months"]["NEGO"] == pytest.approx(ages["NEGO"] + 5)
    assert not np.array_equal(a.entries, c.entries)


def test_forecast_monthly_leads_and_window(demo):
    _, truth, _, _ = demo
    plan = [0, 0, 300, 0]
    fc = forecast(truth, None, plan, horizon=4, seed=1)
    np.testing.assert_array_equal(fc.new_leads, plan)
    # nothing exists before month 3 and leads entering in month 3 arrive in their entry stages
    assert fc.entries[:, :2].sum() == 0
    assert np.all(fc.entries[:, 2, :truth.n_stages].sum(1) + fc.entries[:, 2, truth.n_stages:].sum(1) == 300)
    assert fc.window_wins((3, 4)).shape == (fc.n_sims,)
    assert 0.0 <= fc.probability_at_least(1, 4) <= 1.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(pipeline=None, new_leads=0), "nothing to forecast"),
    (dict(pipeline=None, new_leads=[1, 2]), "list of 6 numbers"),
    (dict(pipeline={"XX": 1}, new_leads=5), "unknown stage code"),
    (dict(pipeline=None, new_leads=5, horizon=0), "horizon"),
    (dict(pipeline=None, new_leads=-5), ">= 0"),
])
def test_forecast_errors(demo, kwargs, words):
    _, truth, _, _ = demo
    with pytest.raises(SimulationError, match=words):
        forecast(truth, **kwargs)


def test_leads_from_history(demo):
    _, _, _, tr = demo
    ent = tr[tr["from_stage"] == "ENTRY"].groupby("month")["n"].sum().sort_index()
    assert leads_from_history(tr, months=3) == pytest.approx(ent.iloc[-3:].mean())
    # months without entries count as zero
    t = pd.DataFrame({"month": pd.to_datetime(["2025-01-01", "2025-03-01", "2025-03-01"]),
                      "from_stage": ["ENTRY", "LEAD", "ENTRY"], "to_stage": ["LEAD", "MQL", "LEAD"], "n": [30, 5, 6]})
    assert leads_from_history(t, months=3) == pytest.approx(12.0)
    with pytest.raises(SimulationError, match="ENTRY"):
        leads_from_history(t[t["from_stage"] != "ENTRY"])
    with pytest.raises(SimulationError, match="columns"):
        leads_from_history(t.drop(columns="n"))


def test_pipeline_state_used_by_forecast(demo):
    _, truth, pipe, _ = demo
    fc = forecast(truth, pipe, 0, horizon=2, seed=0)
    np.testing.assert_array_equal(fc.pipeline, np.append(pipeline_state(truth, pipe).sum(1), [0, 0]))
    assert np.all(fc.open[:, -1].sum(1) == len(pipe))


# ---------------------------------------------------------------------- ages, months, inflow
@pytest.fixture(scope="module")
def old_world(demo):
    """The demo truth with 6 ages whose hazards fall with age (old leads move and win less)."""
    _, truth, pipe, _ = demo
    return aged(truth, 6, decay=0.5), pipe


def test_expected_wins_by_age_match_dense_oracle(old_world):
    post, pipe = old_world
    exact = expected_wins(post, pipe, [80, 0, 120, 40, 0], 5)
    rates, entry = post.month_path(np.ones(5, dtype=int))
    np.testing.assert_allclose(exact, dense_wins(rates, entry, pipeline_state(post, pipe),
                                                 np.array([80.0, 0, 120, 40, 0])), rtol=1e-10)


def test_pipeline_age_changes_the_forecast(old_world):
    post, pipe = old_world
    young = pipe.assign(age_months=0)
    old = pipe.assign(age_months=5)
    w_young = expected_wins(post, young, 0, 6)[0]
    w_old = expected_wins(post, old, 0, 6)[0]
    assert w_old.sum() < 0.5 * w_young.sum()                 # old leads win less
    fc_y = forecast(post, young, 0, horizon=6, seed=1)
    fc_o = forecast(post, old, 0, horizon=6, seed=1)
    se = np.sqrt(fc_y.wins.sum(1).var() / fc_y.n_sims + fc_o.wins.sum(1).var() / fc_o.n_sims)
    assert fc_y.wins.sum(1).mean() - fc_o.wins.sum(1).mean() > 10 * se
    assert abs(fc_o.wins.sum(1).mean() - w_old.sum()) < 4 * fc_o.wins.sum(1).std() / np.sqrt(fc_o.n_sims)
    np.testing.assert_array_equal(fc_o.pipeline_by_age[:, -1], pipeline_state(post, pipe).sum(1))


def shocked(post: PosteriorFunnel, sd: float) -> PosteriorFunnel:
    return PosteriorFunnel(post.stages, post.rates, post.entry, deal_value=post.deal_value,
                           shock_sd=np.full((post.n_draws, post.n_stages + 1), sd))


def test_month_shocks_widen_the_forecast(demo):
    _, truth, pipe, _ = demo
    base = synthetic_posterior(truth, 2000)
    calm = forecast(base, pipe, 250, horizon=6, seed=4)
    wild = forecast(shocked(base, 0.5), pipe, 250, horizon=6, seed=4)
    assert np.all(wild.wins.std(0) > 1.3 * calm.wins.std(0)), (wild.wins.std(0), calm.wins.std(0))
    assert wild.wins.sum(1).std() > 1.3 * calm.wins.sum(1).std()
    # small shocks: the mean stays within Monte Carlo error of the no-shock expectation
    small = forecast(shocked(base, 0.05), pipe, 250, horizon=6, seed=5)
    tot = small.wins.sum(1)
    exact = expected_wins(truth, pipe, 250, 6)[0].sum()
    assert abs(tot.mean() - exact) < 4 * tot.std(ddof=1) / np.sqrt(tot.size)
    np.testing.assert_allclose(small.expected_wins, calm.expected_wins)   # expected run: no shocks


def test_seasonal_offsets_shift_the_right_calendar_month(old_world):
    post, pipe = old_world
    K = post.n_stages
    season = np.zeros((1, 12, K + 1, K + 2))
    season[0, 2, :K, K] = 1.0                                 # March: more wins from every stage
    seasonal = PosteriorFunnel(post.stages, post.rates, post.entry, deal_value=post.deal_value, season=season)
    flat = expected_wins(post, pipe, 200, 4)[0]
    got = expected_wins(seasonal, pipe, 200, 4, start="2025-01-31")[0]   # months: Feb, Mar, Apr, May
    np.testing.assert_allclose(got[0], flat[0])
    assert got[1] > 1.3 * flat[1]
    months = np.array([2, 3, 4, 5])
    rates, entry = seasonal.month_path(months)
    np.testing.assert_allclose(got, dense_wins(rates, entry, pipeline_state(post, pipe), np.full(4, 200.0))[0],
                               rtol=1e-10)
    with pytest.raises(SimulationError, match="start="):
        forecast(seasonal, pipe, 200, horizon=4)
    fc = forecast(seasonal, pipe, 200, horizon=4, seed=0, start="2025-01-31")
    assert abs(fc.wins[:, 1].mean() - got[1]) < 4 * fc.wins[:, 1].std() / np.sqrt(fc.n_sims)


def test_inflow_draws_widen_the_forecast(demo):
    _, truth, pipe, _ = demo
    post = synthetic_posterior(truth, 1500)
    rng = np.random.default_rng(0)
    level = rng.gamma(shape=4.0, scale=250 / 4.0, size=(500, 1))          # mean 250, sd 125: an uncertain level
    draws = rng.poisson(level * np.ones((1, 9)))
    plan = forecast(post, pipe, 250, horizon=9, seed=2)
    inflow = forecast(post, pipe, draws, horizon=9, seed=2)
    assert inflow.meta["inflow"] and inflow.inflow.shape == (inflow.n_sims, 9)
    assert set(map(tuple, inflow.inflow[:50])) <= set(map(tuple, draws))   # whole inflow paths
    late = slice(4, 9)                                   # new leads of the demo win from month 5 on
    assert inflow.wins[:, late].sum(1).std() > 1.3 * plan.wins[:, late].sum(1).std()
    exact = expected_wins(truth, pipe, inflow.inflow.mean(0), 9)[0]
    tot = inflow.wins.sum(1)
    assert abs(tot.mean() - exact.sum()) < 4 * tot.std(ddof=1) / np.sqrt(tot.size)
    np.testing.assert_allclose(inflow.expected_wins[0], exact)
    again = forecast(post, pipe, draws, horizon=9, seed=2)
    np.testing.assert_array_equal(again.wins, inflow.wins)


def test_default_target(demo):
    _, truth, pipe, tr = demo
    rate = leads_from_history(tr)
    want = math.ceil(1.1 * expected_wins(truth, pipe, rate, 6)[0].sum())
    assert default_target(truth, pipe, rate, 6) == want
    window = expected_wins(truth, pipe, rate, 9)[0, 3:9].sum()
    assert default_target(truth, pipe, rate, (4, 9)) == math.ceil(1.1 * window)
    assert default_target(truth, None, 0, 3) == 1.0                    # nothing expected: at least 1


def test_segment_cells_share_their_month_shocks_but_not_their_moves():
    """Two cells of one total forecast with the same ``shock_seed``: a strong month shock
    common to both moves their wins together; without it they are independent."""
    truth = demo_data().truth.posterior()
    post = PosteriorFunnel(truth.stages, truth.rates, truth.entry, common_sd=np.array([0.8]))
    cell = {truth.stages[-1]: 3000}                   # a big NEGO pipeline: binomial noise is small
    def wins(i, shared):
        kw = {"shock_seed": [7, 99]} if shared else {}
        return forecast(post, cell, 0.0, 2, seed=[7, i], sims_per_draw=2000, **kw).wins[:, 0]
    a, b = wins(0, True), wins(1, True)
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert not np.array_equal(a, b)                    # their own moves differ
    a, b = wins(0, False), wins(1, False)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
