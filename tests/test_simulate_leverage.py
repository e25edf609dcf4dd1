"""Tests of leverage(), stall_ranking(), pipeline_coverage() and benchmark_gaps() against hand computations."""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import (benchmark_gaps, expected_wins, leverage, pipeline_coverage, stall_ranking,
                                    synthetic_posterior)
from funnel_models.simulate.core import pipeline_counts


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
    P = post.P.copy()
    new_stay = 1 - 1 / np.maximum(1.0, E - 1.0)
    P[:, k, :] *= ((1 - new_stay) / (1 - P[:, k, k]))[:, None]
    P[:, k, k] = new_stay
    direct = expected_wins(PosteriorFunnel(post.stages, P, post.entry), pipe, 250, 6).mean(1) - base
    row = tab[(tab["stage"] == "NEGO") & tab["lever"].str.startswith("stall")].iloc[0]
    assert row["extra_wins_mean"] == pytest.approx(direct.mean())
    zero = leverage(post, pipe, 250, 6, improvement=0.0, stall_reduction_months=0.0)
    np.testing.assert_allclose(zero["extra_wins_mean"], 0.0, atol=1e-9)


def test_stall_ranking(demo):
    _, _, post = demo
    tab = stall_ranking(post)
    stay = post.P[:, np.arange(post.n_stages), np.arange(post.n_stages)]
    exp = (1 / (1 - stay)).mean(0)
    got = tab.set_index("stage").loc[list(post.stages), "expected_months_mean"].to_numpy()
    np.testing.assert_allclose(got, exp)
    assert tab["expected_months_mean"].is_monotonic_decreasing and list(tab["rank"]) == list(range(1, 7))
    assert tab["share"].sum() == pytest.approx(1.0)
    assert (tab["expected_months_lo"] <= tab["expected_months_hi"]).all()


def test_pipeline_coverage(demo):
    truth, pipe, _ = demo
    tab = pipeline_coverage(truth, pipe, 40, 3).set_index("stage")
    x0 = pipeline_counts(truth, pipe)
    P3 = np.linalg.matrix_power(truth.P[0], 3)
    K = truth.n_stages
    np.testing.assert_allclose(tab["expected_wins_mean"].iloc[:K], x0[:K] * P3[:K, K])
    assert tab.loc["TOTAL", "expected_wins_mean"] == pytest.approx((x0[:K] * P3[:K, K]).sum())
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
