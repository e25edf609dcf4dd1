"""Tests of leverage(), stall_ranking(), pipeline_coverage(), pipeline_outlook() and benchmark_gaps()."""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import (benchmark_gaps, expected_wins, leverage, pipeline_coverage, pipeline_outlook,
                                    stall_ranking, synthetic_posterior)
from funnel_models.simulate.core import pipeline_state
from simulate_oracle import aged, month_matrices


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    truth = d.truth.posterior()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    return truth, pipe, synthetic_posterior(truth, 400, concentration=150.0, seed=5)


def test_leverage_matches_direct_computation(demo):
    truth, pipe, post = demo
    tab = leverage(post, pipe, 250, 6)
    assert len(tab) == 2 * post.n_stages
    assert tab["extra_wins_mean"].is_monotonic_decreasing
    assert (tab["focus"] == "focus here").sum() == 1 and tab.loc[0, "focus"] == "focus here"
    base = expected_wins(post, pipe, 250, 6).mean(1)
    row = tab[(tab["stage"] == "DEMO") & tab["lever"].str.startswith("conversion")].iloc[0]
    direct = expected_wins(post.adjust(conversion={"DEMO": 1.1}), pipe, 250, 6).mean(1) - base
    assert row["extra_wins_mean"] == pytest.approx(direct.mean())
    assert row["extra_wins_lo"] <= row["extra_wins_mean"] <= row["extra_wins_hi"]
    assert row["extra_wins_hi"] > row["extra_wins_lo"]        # parameter uncertainty shows
    # one month less stall, per draw
    k = post.stage_index("NEGO")
    E = post.expected_stall()[:, k]
    R = post.rates.copy()
    new_stay = 1 - 1 / np.maximum(1.0, E - 1.0)
    R[:, k, 0, :] *= ((1 - new_stay) / (1 - R[:, k, 0, k]))[:, None]
    R[:, k, 0, k] = new_stay
    direct = expected_wins(PosteriorFunnel(post.stages, R, post.entry), pipe, 250, 6).mean(1) - base
    row = tab[(tab["stage"] == "NEGO") & tab["lever"].str.startswith("stall")].iloc[0]
    assert row["extra_wins_mean"] == pytest.approx(direct.mean())
    zero = leverage(post, pipe, 250, 6, improvement=0.0, stall_reduction_months=0.0)
    np.testing.assert_allclose(zero["extra_wins_mean"], 0.0, atol=1e-9)


def test_stall_ranking(demo):
    _, _, post = demo
    tab = stall_ranking(post)
    stay = post.rates[:, np.arange(post.n_stages), 0, np.arange(post.n_stages)]
    exp = (1 / (1 - stay)).mean(0)
    got = tab.set_index("stage").loc[list(post.stages), "expected_months_mean"].to_numpy()
    np.testing.assert_allclose(got, exp)
    assert tab["expected_months_mean"].is_monotonic_decreasing and list(tab["rank"]) == list(range(1, 7))
    assert tab["share"].sum() == pytest.approx(1.0)
    assert (tab["expected_months_lo"] <= tab["expected_months_hi"]).all()


def test_pipeline_coverage(demo):
    truth, pipe, _ = demo
    tab = pipeline_coverage(truth, pipe, 40, 3).set_index("stage")
    x0 = pipeline_state(truth, pipe)[:, 0]
    K = truth.n_stages
    P = np.zeros((K + 2, K + 2))
    P[:K], P[K:, K:] = truth.rates[0, :, 0], np.eye(2)
    P3 = np.linalg.matrix_power(P, 3)
    np.testing.assert_allclose(tab["expected_wins_mean"].iloc[:K], x0 * P3[:K, K])
    assert tab.loc["TOTAL", "expected_wins_mean"] == pytest.approx((x0 * P3[:K, K]).sum())
    assert tab.loc["TOTAL", "coverage"] == pytest.approx(tab.loc["TOTAL", "expected_wins_mean"] / 120)
    assert tab.loc["TOTAL", "open"] == len(pipe)
    with pytest.raises(SimulationError, match="targets_per_month"):
        pipeline_coverage(truth, pipe, 0, 3)


def test_benchmark_gaps(demo):
    truth, _, post = demo
    conv = truth.conversion()[0]
    k = truth.stage_index("DEMO")
    tab = benchmark_gaps(truth, {"DEMO": conv[k], "SQL": conv[2] + 0.1, "NEGO": conv[-1] - 0.1}, 300).set_index("stage")
    assert tab.loc["DEMO", "gap_mean"] == pytest.approx(0.0, abs=1e-12)
    assert tab.loc["DEMO", "wins_gap_mean"] == pytest.approx(0.0, abs=1e-9)
    assert tab.loc["SQL", "p_below"] == 1.0 and tab.loc["SQL", "wins_gap_mean"] > 0
    assert tab.loc["NEGO", "p_below"] == 0.0 and tab.loc["NEGO", "wins_gap_mean"] == pytest.approx(0.0, abs=1e-9)
    # wins gap = steady-state wins with the benchmark minus now
    better = truth.adjust(conversion={"SQL": (conv[2] + 0.1) / conv[2]})
    want = 300 * (better.lead_win_rate()[0] - truth.lead_win_rate()[0])
    assert tab.loc["SQL", "wins_gap_mean"] == pytest.approx(want)
    b = float(np.median(post.conversion()[:, k]))
    tab2 = benchmark_gaps(post, {"DEMO": b}, 300)
    assert tab2.loc[0, "p_below"] == pytest.approx(np.mean(post.conversion()[:, k] < b))
    assert 0.3 < tab2.loc[0, "p_below"] < 0.7
    with pytest.raises(SimulationError, match="unknown stage"):
        benchmark_gaps(truth, {"XX": 0.5}, 100)
    with pytest.raises(SimulationError, match="between 0 and 1"):
        benchmark_gaps(truth, {"DEMO": 1.5}, 100)


def _exits(rates: np.ndarray, k: int, months: int) -> np.ndarray:
    """P(a lead that enters stage k leaves it at age a, to destination j), (D, months, C),
    by walking one lead's age month by month (the last age repeats)."""
    D, _, A, C = rates.shape
    alive = np.ones(D)
    out = np.zeros((D, months, C))
    for a in range(months):
        row = rates[:, k, min(a, A - 1)]
        out[:, a] = alive[:, None] * row
        out[:, a, k] = 0.0
        alive = alive * row[:, k]
    return out


def test_stall_lever_with_ages_moves_every_leaver_a_month_sooner_and_keeps_who_leaves(demo):
    from funnel_models.posterior import shift_leaving
    truth, pipe, _ = demo
    post = aged(synthetic_posterior(truth, 50, concentration=150.0, seed=3), 6, decay=0.7)
    k = post.stage_index("DEMO")
    before = _exits(post.rates, k, 60)
    after = _exits(shift_leaving(post.rates, k), k, 60)
    # oracle: leaving at age a + 1 becomes leaving at age a; the first two months merge
    want = np.concatenate([before[:, :1] + before[:, 1:2], before[:, 2:], np.zeros_like(before[:, :1])], axis=1)
    np.testing.assert_allclose(after[:, :59], want[:, :59], atol=1e-12)
    np.testing.assert_allclose(shift_leaving(post.rates, k, 2), shift_leaving(shift_leaving(post.rates, k), k, 1))
    others = [j for j in range(post.n_stages) if j != k]
    np.testing.assert_array_equal(shift_leaving(post.rates, k)[:, others], post.rates[:, others])
    tab = leverage(post, pipe, 250, 6)
    assert len(tab) == 2 * post.n_stages and tab["extra_wins_mean"].is_monotonic_decreasing
    row = tab[(tab["stage"] == "DEMO") & tab["lever"].str.startswith("stall")].iloc[0]
    quicker = PosteriorFunnel(post.stages, shift_leaving(post.rates, k), post.entry)
    base = expected_wins(post, pipe, 250, 6).mean(1)
    assert row["extra_wins_mean"] == pytest.approx((expected_wins(quicker, pipe, 250, 6).mean(1) - base).mean())
    with pytest.raises(SimulationError, match="whole number"):
        leverage(post, pipe, 250, 6, stall_reduction_months=0.5)
    with pytest.raises(SimulationError, match="needs ages"):
        shift_leaving(truth.rates, k)


def test_a_quicker_stage_does_not_wake_leads_that_go_cold():
    """A one-stage funnel without recorded losses where most leads go cold (Olist's
    shape): shortening the stall must not turn cold leads into wins."""
    post = _no_losses()
    rates = post.rates
    tab = leverage(post, {"MQL": 1000}, 300, 6).set_index("lever")
    base = float(expected_wins(post, {"MQL": 1000}, 300, 6).mean())
    stall = tab.loc[tab.index.str.startswith("stall"), "extra_wins_mean"].iloc[0]
    # wins come a month sooner: the gain is a fraction of a month's wins, not a multiple
    assert 0 < stall < 0.15 * base, (stall, base)           # scaling the chance of leaving at every age: 0.31
    from funnel_models.posterior import shift_leaving
    quicker = PosteriorFunnel(("MQL",), shift_leaving(rates, 0), post.entry)
    np.testing.assert_allclose(quicker.lead_win_rate(), post.lead_win_rate(), atol=2e-3)


def _no_losses(D: int = 20, A: int = 13) -> PosteriorFunnel:
    """One stage, no recorded losses: leads win early or practically never (Olist's shape)."""
    stay = np.where(np.arange(A) < 2, 0.85, 0.999)
    rates = np.zeros((D, 1, A, 3))
    rates[:, 0, :, 0] = stay
    rates[:, 0, :, 1] = 1.0 - stay
    return PosteriorFunnel(("MQL",), rates, np.tile([1.0, 0.0, 0.0], (D, 1)))


def test_more_conversion_without_recorded_losses_comes_from_leads_that_would_go_cold(demo):
    post = _no_losses()
    c = post.conversion()[:, 0]
    better = post.adjust(conversion={"MQL": 1.1})
    np.testing.assert_allclose(better.conversion()[:, 0], 1.1 * c, rtol=1e-6)
    assert np.all(better.rates[:, 0, :, 2] == 0.0)                         # still nobody lost
    tab = leverage(post, {"MQL": 1000}, 300, 6).set_index("lever")
    assert tab.loc["conversion +10%", "extra_wins_mean"] > 0
    gap = benchmark_gaps(post, {"MQL": float(c.mean()) * 1.5}, 300).iloc[0]
    assert gap["wins_gap_mean"] > 0
    # where losses are recorded the extra onward moves come from them alone, staying kept
    truth = demo[0]
    k = truth.stage_index("DEMO")
    more = truth.adjust(conversion={"DEMO": 1.1})
    np.testing.assert_allclose(more.conversion()[:, k], 1.1 * truth.conversion()[:, k], rtol=1e-9)
    np.testing.assert_array_equal(more.rates[:, k, :, k], truth.rates[:, k, :, k])


def test_pipeline_coverage_by_age_matches_dense_oracle(demo):
    truth, pipe, _ = demo
    post = aged(truth, 5, decay=0.5)
    tab = pipeline_coverage(post, pipe, 40, 3).set_index("stage")
    x0 = pipeline_state(post, pipe)
    rates, _ = post.month_path(np.ones(3, dtype=int))
    P = month_matrices(rates)[0]
    n = x0.size
    P3 = P[0] @ P[1] @ P[2]
    by_state = x0.reshape(n) * P3[:n, n]
    want = by_state.reshape(x0.shape).sum(1)
    np.testing.assert_allclose(tab["expected_wins_mean"].iloc[:post.n_stages], want, rtol=1e-10)
    k = post.stage_index("NEGO")
    assert tab.loc["NEGO", "win_prob_mean"] == pytest.approx(want[k] / x0[k].sum())


def test_pipeline_outlook(demo):
    truth, pipe, _ = demo
    memoryless = pipeline_outlook(truth, pipe, months=3).set_index("stage")
    assert memoryless["cold"].isna().all() and memoryless["cold_share"].isna().all()
    assert memoryless.loc["TOTAL", "open"] == len(pipe)
    post = aged(synthetic_posterior(truth, 300, concentration=150.0, seed=4), 4, decay=0.6)
    tab = pipeline_outlook(post, pipe, months=3, level=0.8).set_index("stage")
    x0 = pipeline_state(post, pipe)
    for k, s in enumerate(post.stages):                      # cold = leads at age >= cold_after (3)
        ages = pipe.loc[pipe["stage"] == s, "age_months"]
        assert tab.loc[s, "cold"] == (ages >= post.cold_after).sum()
    assert tab.loc["TOTAL", "cold"] == x0[:, -1].sum() > 0
    assert tab.loc["TOTAL", "cold_share"] == pytest.approx(x0[:, -1].sum() / x0.sum())
    # eventual win rate of the open leads, per draw from the absorption probabilities by age
    won = post.pipeline_outcomes(x0)[:, 0]
    assert tab.loc["TOTAL", "win_rate_mean"] == pytest.approx(won.mean() / x0.sum())
    assert tab.loc["TOTAL", "win_rate_lo"] < tab.loc["TOTAL", "win_rate_mean"] < tab.loc["TOTAL", "win_rate_hi"]
    # P(won within 3 months) matches the coverage table and grows with the months
    cov = pipeline_coverage(post, pipe, 1, 3).set_index("stage")
    assert tab.loc["TOTAL", "p_won_within_mean"] == pytest.approx(cov.loc["TOTAL", "expected_wins_mean"] / len(pipe))
    longer = pipeline_outlook(post, pipe, months=6).set_index("stage")
    assert (longer["p_won_within_mean"] >= tab["p_won_within_mean"] - 1e-12).all()
    lw = post.lead_win_rate()
    assert tab.attrs["new_lead_win_rate"][0] == pytest.approx(lw.mean())
    # long shots: leads whose own chance of ever being won is under a tenth of a new lead's;
    # every cold lead (chance 0) is one, and a lead that just reached NEGO is not
    assert (tab["unlikely"] >= tab["cold"]).all()
    one_each = [np.eye(x0.size)[i].reshape(x0.shape) for i in np.flatnonzero(x0.ravel())]
    chances = [post.pipeline_outcomes(x)[:, 0].mean() for x in one_each]
    want = sum(x0.ravel()[i] for i, c in zip(np.flatnonzero(x0.ravel()), chances) if c < 0.1 * lw.mean())
    assert tab.loc["TOTAL", "unlikely"] == want
    assert tab.loc["TOTAL", "unlikely_share"] == pytest.approx(want / x0.sum())
    fresh = pipeline_outlook(post, {"NEGO": 4}).set_index("stage")
    assert fresh.loc["NEGO", "unlikely"] == 0
    empty = pipeline_outlook(post, {"NEGO": 4}).set_index("stage")
    assert np.isnan(empty.loc["LEAD", "win_rate_mean"]) and empty.loc["NEGO", "open"] == 4
