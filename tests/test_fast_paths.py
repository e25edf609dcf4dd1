"""The optimised simulator routines against their straightforward references.

The dashboard's latency budget made several routines faster (``benchmarks/bench_dashboard.py``).
None may change an answer: with the same seed the random draws are the same bit for bit,
and deterministic quantities agree to rounding. The references are the plain algorithms
in ``fastpath_reference.py``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import fastpath_reference as ref
from funnel_models import chain, intervals
from funnel_models import simulate as S
from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import ModelConfigError, SimulationError
from funnel_models.simulate import core, planning, plansims
from funnel_models.simulate.core import calendar_months, pipeline_state, sampled_run, synthetic_posterior
from simulate_oracle import aged
from test_chain import random_rates


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    return d.truth.posterior(), derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)


def reference_run(post, x0, leads, months, rng):
    """:func:`core.sampled_run` with the reference month step (same streams per month)."""
    D, K, A, H = post.n_draws, post.n_stages, post.n_ages, len(months)
    children = rng.spawn(H * (K + 2))
    x = np.broadcast_to(np.rint(x0).astype(np.int64), (D, K, A)).copy()
    lv = np.broadcast_to(np.asarray(leads, dtype=np.int64), (D, H))
    wins = np.zeros((D, H), dtype=np.int64)
    for m in range(H):
        s = children[m * (K + 2):(m + 1) * (K + 2)]
        rates, entry = core.month_rates(post, months, m, s[K + 1])
        x, arrivals = ref.step_sampled(s[:K + 1], rates, entry, x, lv[:, m])
        wins[:, m] = arrivals[:, K]
    return wins, x


@pytest.mark.parametrize("A, skip, empty", [(1, True, True), (1, True, False), (4, True, True), (3, False, False)])
def test_step_sampled_draws_what_the_reference_draws(A, skip, empty):
    rng = np.random.default_rng(A)
    R, entry = random_rates(rng, D=40, K=4, A=A, skip=skip)
    R[:7, 1] = 0.0
    R[:7, 1, :, 1] = 1.0                                    # some draws never leave stage 1
    R[:5, 3, :, 4] += R[:5, 3, :, 5]
    R[:5, 3, :, 5] = 0.0                                    # draws 0-4 never lose a lead in stage 3
    x = rng.integers(1, 30, size=(40, 4, A))                # every row holds leads ...
    if empty:
        x[::3, 2] = 0                                       # ... or some do not (they are not drawn)
        x[5:, 3] = 0                                        # stage 3's leads: only where LOST is impossible
    leads = rng.integers(0, 50, size=40)
    streams = lambda: np.random.default_rng(9).spawn(5)  # noqa: E731
    got = chain.step_sampled(streams(), R, entry, x, leads)
    want = ref.step_sampled(streams(), R, entry, x, leads)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    one = chain.step_sampled(np.random.default_rng(2), R, entry, x, leads)    # one generator for all
    np.testing.assert_array_equal(one[1], ref.step_sampled([np.random.default_rng(2)] * 5, R, entry, x, leads)[1])


@pytest.mark.parametrize("kind", ["memoryless", "aged", "shocks", "season"])
def test_sampled_run_draws_what_the_reference_draws(demo, kind):
    truth, pipe = demo
    K = truth.n_stages
    base = {"memoryless": lambda: truth,
            "aged": lambda: aged(truth, 4),
            "shocks": lambda: aged(truth, 3, shock_sd=np.full((1, K + 1), 0.3)),
            "season": lambda: aged(truth, 2, season=np.random.default_rng(4).normal(0, 0.3, (1, 12, K + 1, K + 2)))
            }[kind]()
    post = synthetic_posterior(base, 120, concentration=150.0, seed=1)
    months = calendar_months("2025-05", 5)
    x0 = pipeline_state(post, pipe)
    entries, _, last = sampled_run(post, x0, np.full(5, 60), months, np.random.default_rng(3))
    wins, x = reference_run(post, x0, np.full(5, 60), months, np.random.default_rng(3))
    np.testing.assert_array_equal(entries[..., K], wins)
    np.testing.assert_array_equal(last, x)


@pytest.mark.parametrize("A", [1, 3])
def test_step_expected_matches_the_reference(A):
    rng = np.random.default_rng(10 + A)
    R, entry = random_rates(rng, D=25, K=5, A=A)
    x = rng.uniform(0, 40, size=(25, 5, A))
    leads = rng.uniform(0, 80, size=25)
    got = chain.step_expected(R, entry, x, leads)
    want = ref.step_expected(R, entry, x, leads)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-12)


def test_interval_table_matches_one_quantile_call_per_level():
    rng = np.random.default_rng(3)
    for shape, levels in [((300, 6), (0.5, 0.8, 0.95)), ((57, 3), (0.9,)), ((1000, 1), (0.6, 0.99, 0.7))]:
        d = np.cumsum(rng.poisson(rng.uniform(0.5, 30), shape), axis=1).astype(float)
        got = intervals.interval_table(d, levels, index=np.arange(shape[1]), name="month")
        want = ref.interval_table(d, levels, np.arange(shape[1]), "month")
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_pipeline_state_takes_its_own_array(demo):
    truth, pipe = demo
    post = aged(truth, 4)
    x0 = pipeline_state(post, pipe)
    np.testing.assert_array_equal(pipeline_state(post, x0), x0)
    with pytest.raises(SimulationError, match=r"shape \(6, 4\)"):
        pipeline_state(post, x0[:, :2])
    with pytest.raises(SimulationError, match="whole"):
        pipeline_state(post, x0 + 0.5)
    np.testing.assert_array_equal(pipeline_state(post, x0 + 0.5, integer=False), x0 + 0.5)


@pytest.mark.parametrize("shocks", [False, True])
def test_plan_pipeline_wins_draw_only_occupied_cells(demo, shocks):
    truth, pipe = demo
    K = truth.n_stages
    base = aged(truth, 3, shock_sd=np.full((1, K + 1), 0.25) if shocks else None)
    post = synthetic_posterior(base, 150, concentration=200.0, seed=4)
    prob = planning.plan_problem(post, 40, (2, 5), pipeline=pipe, seed=8, start="2025-03")
    path_rng, pipe_rng, _ = np.random.default_rng(8).spawn(3)
    months = core.season_months(post, "2025-03", 5)
    idx = prob.idx
    if shocks:
        _, r = planning.window_win_probabilities(post.take(idx), months, (2, 5), path_rng)
    else:
        _, r = planning.window_win_probabilities(post, months, (2, 5))
    wins = ref.pipeline_wins(pipe_rng, pipeline_state(post, pipe).astype(np.int64), r, prob.row)
    np.testing.assert_array_equal(prob.pipeline_need, 40 - wins)


def test_rates_checks_keep_their_tolerances():
    R, entry = random_rates(np.random.default_rng(5), D=4, K=3, A=2)
    chain.check_rates(R, entry)
    R2 = R.copy()
    R2[1, 0, 1, 0] += 9e-6                                  # inside allclose(atol=1e-6, rtol=1e-5)
    chain.check_rates(R2, entry)
    R2[1, 0, 1, 0] += 5e-6
    with pytest.raises(ModelConfigError, match="sum to 1"):
        chain.check_rates(R2, entry)
    R3 = R.copy()
    R3[2, 1, 0, 0] = np.nan
    with pytest.raises(ModelConfigError, match="sum to 1"):
        chain.check_rates(R3, entry)


@pytest.mark.parametrize("kind", ["plain", "shocks_profile", "baseline_revenue"])
def test_leads_needed_with_shared_sims_gives_the_same_answers(demo, kind):
    truth, pipe = demo
    K = truth.n_stages
    base = aged(truth, 3, shock_sd=np.full((1, K + 1), 0.2)) if kind == "shocks_profile" else truth
    post = synthetic_posterior(base, 200, concentration=300.0, seed=6)
    post = replace(post, deal_value=np.random.default_rng(1).gamma(20.0, 50.0, 200))
    kw = dict(pipeline=pipe, seed=4, start="2025-06")
    if kind == "baseline_revenue":
        kw["baseline"] = np.random.default_rng(2).poisson(30, (50, 8)).astype(float)
    sims = S.plan_sims(post, (2, 7), **kw)
    for target, conf in [(30, 0.8), (55, 0.6), (55, 0.9), (0, 0.5)]:
        extra = {"profile": [1, 2, 3, 3, 2, 1, 1]} if kind == "shocks_profile" else {}
        unit = {"target_unit": "revenue"} if kind == "baseline_revenue" else {}
        tgt = target * 1000.0 if unit else target
        want = S.leads_needed(post, tgt, (2, 7), confidence=conf, **kw, **extra, **unit)
        got = S.leads_needed(post, tgt, (2, 7), confidence=conf, sims=sims, **extra, **unit)
        assert (got.leads, got.probability, got.message, got.naive_leads) == \
               (want.leads, want.probability, want.message, want.naive_leads)
        assert got.pipeline_probability == want.pipeline_probability
        np.testing.assert_array_equal(got.baseline_probability, want.baseline_probability)
        np.testing.assert_array_equal(got.curve.to_numpy(), want.curve.to_numpy())
    with pytest.raises(SimulationError, match="plan_sims"):
        S.leads_needed(post, 30, (1, 7), sims=sims)


def test_plan_search_finds_what_bisection_finds(demo):
    """The search (bracket, then secant steps) returns what bisection over all of
    [0, max_total] returns, on real plan problems (many targets, windows, confidences,
    posteriors), and the secant narrowing needs fewer evaluations of P than bisecting
    the same brackets."""
    truth, pipe = demo
    rng = np.random.default_rng(0)
    evals, cases = [], 0
    for i in range(24):
        base = aged(truth, 3) if i % 3 == 0 else truth
        post = synthetic_posterior(base, 150, concentration=float(rng.uniform(50, 500)), seed=i)
        window = (int(rng.integers(1, 3)), int(rng.integers(4, 10)))
        prob = planning.plan_problem(post, float(rng.integers(5, 400)), window, pipeline=pipe, seed=i)
        for conf in (0.55, 0.8, 0.95):
            seen = {0: -1.0}

            def P(n):
                if n not in seen:
                    seen[n] = float(prob.probability(n)[0])
                return seen[n]
            if P(prob.max_total) < conf or np.mean(prob.need <= 0) >= conf:
                continue
            want = ref.bisect(P, 0, prob.max_total, conf)
            got, p, _ = planning._search(prob, conf, planning._normal_guess(prob, conf))
            assert got == want and p == P(want)
            cases += 1
            for lo, hi in ((max(0, want - 40), want + 13), (max(0, want - 3), want + 700), (want - 1, want)):
                calls = []
                assert planning._narrow(lambda n: calls.append(n) or P(n), lo, hi, conf, secant=True) == want
                halved = []
                assert ref.bisect(lambda n: halved.append(n) or P(n), lo, hi, conf) == want
                evals.append((len(set(calls) - {lo, hi}), len(halved)))
    new, old = np.array(evals).T
    assert cases > 40 and new.sum() < 0.75 * old.sum()


@pytest.mark.parametrize("start", ["2025-11-30", "2024-01-31", "2024-02-29", "1999-12-01 13:00"])
def test_forecast_months_are_the_month_starts_after_the_cut_off(start):
    base = pd.Timestamp(start).to_period("M").to_timestamp()
    for H in (1, 6, 25):
        want = pd.DatetimeIndex([base + pd.DateOffset(months=m) for m in range(1, H + 1)], name="month")
        got = core.forecast_months(start, H)
        pd.testing.assert_index_equal(got, want, exact=True)
        assert got.freq == want.freq and got.name == "month"


def test_window_win_probabilities_on_views_equal_the_copied_blocks(demo):
    """Average months run on views of the posterior's arrays, block by block; the numbers
    are those of the copied blocks of CHUNK_DRAWS draws (posterior.take) used before."""
    truth, _ = demo
    post = synthetic_posterior(aged(truth, 5), plansims.CHUNK_DRAWS + 300, concentration=100.0, seed=3)
    months = calendar_months(None, 7)
    q, r = plansims.window_win_probabilities(post, months, (2, 7))
    blocks = [plansims.window_win_probabilities(post.take(np.arange(lo, min(lo + plansims.CHUNK_DRAWS, post.n_draws))),
                                                months, (2, 7)) for lo in range(0, post.n_draws, plansims.CHUNK_DRAWS)]
    np.testing.assert_array_equal(q, np.concatenate([b[0] for b in blocks]))
    np.testing.assert_array_equal(r, np.concatenate([b[1] for b in blocks]))
