"""Tests of forecast() and leads_from_history() against exact expectations on the demo truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.simulate import expected_wins, forecast, leads_from_history, synthetic_posterior
from funnel_models.simulate.core import pipeline_counts


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


def test_forecast_reproducible_and_age_not_used(demo):
    _, truth, pipe, _ = demo
    a = forecast(truth, pipe, 100, horizon=3, seed=9)
    b = forecast(truth, pipe.assign(age_months=pipe["age_months"] + 5), 100, horizon=3, seed=9)
    c = forecast(truth, pipe, 100, horizon=3, seed=10)
    np.testing.assert_array_equal(a.entries, b.entries)
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


def test_pipeline_counts_used_by_forecast(demo):
    _, truth, pipe, _ = demo
    fc = forecast(truth, pipe, 0, horizon=2, seed=0)
    np.testing.assert_array_equal(fc.pipeline, pipeline_counts(truth, pipe))
    assert np.all(fc.open[:, -1].sum(1) == len(pipe))
