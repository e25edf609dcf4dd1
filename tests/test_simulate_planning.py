"""Tests of leads_needed(): exactness, monotonicity, feasibility, calibration on the demo truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import expected_wins, leads_from_history, leads_needed, naive_win_rate, synthetic_posterior
from funnel_models.simulate.core import calendar_months, pipeline_state, sampled_run
from simulate_oracle import aged, month_matrices


@pytest.fixture(scope="module")
def demo():
    d = demo_data()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    return d, d.truth.posterior(), pipe, derive.transitions(snaps, d.spec)


def one_cohort_posterior(n_draws: int = 400, seed: int = 0) -> PosteriorFunnel:
    """Entry straight to WON with probability p_d (Beta draws); otherwise stuck in A."""
    p = np.random.default_rng(seed).beta(30, 70, n_draws)
    P = np.zeros((n_draws, 3, 3))
    P[:, 0, 0], P[:, 0, 2] = 0.5, 0.5
    P[:, 1, 1] = P[:, 2, 2] = 1.0
    entry = np.column_stack([1 - p, p, np.zeros(n_draws)])
    return PosteriorFunnel.from_matrix(("A",), P, entry, deal_value=np.full(n_draws, 1000.0))


def test_exact_for_single_cohort_without_lag():
    post = one_cohort_posterior()
    p = post.entry[:, 1]
    target, conf = 40, 0.8
    res = leads_needed(post, target, (1, 1), confidence=conf)
    exact = lambda L: float(np.mean(binom.sf(target - 1, L, p)))  # noqa: E731
    assert res.feasible and res.probability == pytest.approx(exact(res.leads), abs=1e-12)
    assert exact(res.leads) >= conf > exact(res.leads - 1)
    np.testing.assert_allclose(res.curve["probability"], [exact(L) for L in res.curve["leads"]], atol=1e-12)
    assert res.curve["leads"].max() >= 1.9 * res.leads
    # revenue target = ceil(revenue / deal value) wins
    rev = leads_needed(post, target * 1000.0 - 500.0, 1, confidence=conf, target_unit="revenue")
    assert rev.leads == res.leads


def test_monotone_in_target_and_confidence(demo):
    _, truth, pipe, _ = demo
    post = synthetic_posterior(truth, 300, concentration=200.0, seed=4)
    base = expected_wins(truth, pipe, 0, 9)[0].sum()
    targets = [math.ceil(base * f) for f in (1.0, 1.2, 1.4, 1.6)]
    by_target = [leads_needed(post, t, 9, pipeline=pipe, seed=2).leads for t in targets]
    assert all(x is not None for x in by_target)
    assert by_target == sorted(by_target) and by_target[-1] > by_target[0]
    by_conf = [leads_needed(post, targets[2], 9, pipeline=pipe, confidence=c, seed=2).leads
               for c in (0.5, 0.7, 0.9, 0.95)]
    assert by_conf == sorted(by_conf) and by_conf[-1] > by_conf[0]


def test_answer_is_smallest_and_reproducible(demo):
    _, truth, pipe, _ = demo
    post = synthetic_posterior(truth, 200, concentration=200.0, seed=1)
    target = math.ceil(1.3 * expected_wins(truth, pipe, 250, 12)[0].sum())
    a = leads_needed(post, target, 12, pipeline=pipe, seed=7)
    b = leads_needed(post, target, 12, pipeline=pipe, seed=7)
    assert a.leads == b.leads and a.probability == b.probability
    assert a.curve.equals(b.curve)
    curve = a.curve.set_index("leads")["probability"]
    assert curve.is_monotonic_increasing
    assert a.probability >= 0.8
    below = a.curve[a.curve["leads"] < a.leads]["probability"]
    assert (below < 0.8).all()
    np.testing.assert_array_equal(a.monthly_leads, np.full(12, a.leads))


def test_pipeline_alone_enough(demo):
    _, truth, pipe, _ = demo
    low = math.floor(0.5 * expected_wins(truth, pipe, 0, 6)[0].sum())
    res = leads_needed(truth, low, 6, pipeline=pipe)
    assert res.feasible and res.leads == 0 and res.pipeline_probability >= 0.8
    assert "pipeline alone" in res.message


def shortest_months_to_win(post: PosteriorFunnel) -> int:
    """Breadth-first search over possible transitions (independent of the implementation)."""
    K = post.n_stages
    frontier = {int(s) for s in np.flatnonzero(post.entry[0] > 0)}
    for months in range(K + 2):
        if K in frontier:
            return months
        frontier = {int(t) for s in frontier if s < K for t in np.flatnonzero(post.rates[0, s, 0] > 0)}
    raise AssertionError("never won")


def test_infeasible_window_shorter_than_cycle(demo):
    _, truth, pipe, _ = demo
    lag = shortest_months_to_win(truth)
    assert lag >= 1
    res = leads_needed(truth, 10_000, lag, pipeline=pipe)   # leads entering in month 1 can first win in month lag+1
    assert not res.feasible and res.leads is None
    assert res.min_months_to_win == lag
    assert f"at least {lag} month" in res.message and "pipeline alone" in res.message
    ok = leads_needed(truth, 1, lag + 1)
    assert ok.feasible and ok.leads is not None and ok.leads > 0


def test_infeasible_at_max_leads():
    post = one_cohort_posterior()
    res = leads_needed(post, 200, 1, max_leads=300)
    assert not res.feasible and res.leads is None and "max_leads=300" in res.message
    assert res.probability == pytest.approx(float(np.mean(binom.sf(199, 300, post.entry[:, 1]))))


def test_profile_plan(demo):
    _, truth, pipe, _ = demo
    profile = [1, 2, 3, 3, 2, 1, 1, 1, 1]
    target = math.ceil(1.3 * expected_wins(truth, pipe, 250, 9)[0].sum())
    res = leads_needed(synthetic_posterior(truth, 200), target, 9, pipeline=pipe, profile=profile, seed=1)
    assert res.feasible
    np.testing.assert_array_equal(res.monthly_leads, np.rint(res.scale * np.array(profile)))
    assert abs(res.monthly_leads.sum() - res.leads) <= len(profile)
    flat = leads_needed(synthetic_posterior(truth, 200), target, 9, pipeline=pipe, seed=1)
    # back-loading leads (profile weighted late) needs more in total than front-loading
    late = leads_needed(synthetic_posterior(truth, 200), target, 9, pipeline=pipe, profile=profile[::-1], seed=1)
    early = leads_needed(synthetic_posterior(truth, 200), target, 9, pipeline=pipe,
                         profile=[9, 8, 7, 6, 5, 4, 3, 2, 1], seed=1)
    assert early.leads < 9 * flat.leads
    assert late.leads > early.leads


def test_naive_rate_and_plan(demo):
    _, truth, pipe, _ = demo
    conv = truth.conversion()[0]
    assert naive_win_rate(truth) == pytest.approx(np.prod(conv))   # most leads land in the first stage
    res = leads_needed(truth, 300, (1, 12), pipeline=pipe)
    assert res.naive_leads == math.ceil(300 / np.prod(conv) / 12)
    assert 0.0 <= res.naive_probability <= 1.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(target=-1, window=6), "target"),
    (dict(target=10, window=6, confidence=1.0), "confidence"),
    (dict(target=10, window=6, confidence=0), "confidence"),
    (dict(target=10, window=(0, 3)), "past"),
    (dict(target=10, window=(4, 3)), "before it starts"),
    (dict(target=10, window=6, pipeline={"XX": 3}), "unknown stage"),
    (dict(target=10, window=6, target_unit="euros"), "target_unit"),
    (dict(target=10, window=6, profile=[1, 2]), "profile"),
])
def test_bad_arguments(demo, kwargs, words):
    _, truth, _, _ = demo
    with pytest.raises(SimulationError, match=words):
        leads_needed(truth, **kwargs)


def test_revenue_target_needs_deal_values(demo):
    _, truth, _, _ = demo
    no_value = PosteriorFunnel(truth.stages, truth.rates, truth.entry)
    with pytest.raises(SimulationError, match="deal values"):
        leads_needed(no_value, 1e6, 6, target_unit="revenue")


def test_calibration_fast(demo):
    """Plans at 80% must hit in 80% of futures simulated from the truth.

    400 futures per plan (SE of a hit rate about 0.02); tolerance +-0.08 (4 SE) on each
    of two windows. A plan that ignored the pipeline randomness or the lag would miss
    this by far more (see the naive plan and benchmarks/bench_calibration.py).
    """
    _, truth, pipe, tr = demo
    rate = leads_from_history(tr)
    x0 = pipeline_state(truth, pipe)
    post = synthetic_posterior(truth, 500)
    n = 400
    for i, (window, mult) in enumerate((((1, 12), 1.25), ((4, 9), 1.3))):
        a, T = window
        target = math.ceil(mult * expected_wins(truth, pipe, rate, T)[0, a - 1:T].sum())
        res = leads_needed(post, target, window, pipeline=pipe, confidence=0.8, seed=i)
        assert res.feasible
        world = synthetic_posterior(truth, n)
        ent, _, _ = sampled_run(world, x0, res.monthly_leads, calendar_months(None, T), np.random.default_rng(1000 + i))
        hits = np.mean(ent[:, a - 1:T, truth.n_stages].sum(1) >= target)
        assert abs(hits - 0.8) <= 0.08, (window, hits)
        # the model's own probability for the naive plan matches its simulated hit rate
        ent_n, _, _ = sampled_run(world, x0, np.full(T, res.naive_leads), calendar_months(None, T),
                                  np.random.default_rng(2000 + i))
        naive_hits = np.mean(ent_n[:, a - 1:T, truth.n_stages].sum(1) >= target)
        assert abs(naive_hits - res.naive_probability) <= 0.08


# ---------------------------------------------------------------------- ages, months, baseline inflow
def test_exact_single_cohort_with_ages_and_season(demo):
    """Only month 1's cohort is planned (profile) and counted (window = month 5): P(hit) is an
    exact binomial per draw, with q from the dense (stage, age) matrices of Feb..May."""
    _, truth, _, _ = demo
    K, A, T = truth.n_stages, 4, 5
    season = np.zeros((1, 12, K + 1, K + 2))
    season[0, 4, :K, K] = 0.7                                    # May wins more
    base = aged(synthetic_posterior(truth, 200, concentration=150.0, seed=8), A, decay=0.7)
    post = PosteriorFunnel(base.stages, base.rates, base.entry, deal_value=base.deal_value,
                           season=np.repeat(season, 200, axis=0))
    target, conf, profile = 12, 0.8, [1, 0, 0, 0, 0]
    res = leads_needed(post, target, (T, T), profile=profile, confidence=conf, start="2025-12-31")
    rates, entry = post.month_path(np.arange(1, T + 1))           # Jan..May
    P = month_matrices(rates)
    n = K * A
    s = np.zeros((200, n + 3))
    s[:, [k * A for k in range(K)]] = entry[:, 0, :K]             # at age 0 at the end of month 1
    for h in range(1, T - 1):
        s = np.einsum("ds,dst->dt", s, P[:, h])
    q = np.einsum("ds,dst->dt", s, P[:, T - 1])[:, n] - s[:, n]  # won in month T exactly
    exact = lambda N: float(np.mean(binom.sf(target - 1, N, q)))  # noqa: E731
    assert res.feasible and res.monthly_leads.tolist() == [res.leads, 0, 0, 0, 0]
    assert res.probability == pytest.approx(exact(res.leads), abs=1e-12)
    assert exact(res.leads) >= conf > exact(res.leads - 1)
    flat = leads_needed(base, target, (T, T), profile=profile, confidence=conf)
    assert flat.leads > res.leads                                 # May's wins need fewer leads
    with pytest.raises(SimulationError, match="start="):
        leads_needed(post, target, (T, T))


def test_pipeline_wins_by_age_match_dense_oracle(demo):
    _, truth, pipe, _ = demo
    post = aged(truth, 5, decay=0.5)
    x0 = pipeline_state(post, pipe)
    T = 4
    res = leads_needed(post, 10_000, (2, T), pipeline=pipe, max_leads=10)
    rates, _ = post.month_path(np.ones(T, dtype=int))
    P = month_matrices(rates)[0]
    n = x0.size
    s = np.append(x0.reshape(n), [0, 0, 0])
    won = [s[n]]
    for h in range(T):
        s = s @ P[h]
        won.append(s[n])
    assert res.expected_pipeline_wins == pytest.approx(won[T] - won[1], rel=1e-10)
    young = leads_needed(post, 10_000, (2, T), pipeline=pipe.assign(age_months=0), max_leads=10)
    old = leads_needed(post, 10_000, (2, T), pipeline=pipe.assign(age_months=4), max_leads=10)
    assert young.expected_pipeline_wins > res.expected_pipeline_wins > 2 * old.expected_pipeline_wins


def test_infeasible_message_with_ages():
    """A lead cannot leave stage A in its first month there: the fastest win takes 3 months."""
    R = np.zeros((1, 2, 3, 4))
    R[0, 0, 0] = [1.0, 0.0, 0.0, 0.0]                             # A, age 0: stays
    R[0, 0, 1:] = [0.5, 0.3, 0.0, 0.2]                            # A, age >= 1: stay / B / LOST
    R[0, 1, :] = [0.0, 0.5, 0.3, 0.2]                             # B: stay / WON / LOST
    post = PosteriorFunnel(("A", "B"), R, np.array([[1.0, 0, 0, 0]]))
    res = leads_needed(post, 5, 3)
    assert not res.feasible and res.min_months_to_win == 3
    assert "at least 3 month" in res.message and "first won in month 4" in res.message
    assert leads_needed(post, 5, 4).feasible


def test_baseline_inflow(demo):
    post = one_cohort_posterior()
    p = post.entry[:, 1]
    plain = leads_needed(post, 40, 1, sims_per_draw=50)
    B = 60
    certain = leads_needed(post, 40, 1, baseline=np.full((10, 1), B), sims_per_draw=50)
    assert np.isnan(plain.baseline_probability)
    assert certain.baseline_probability == pytest.approx(np.mean(binom.sf(39, B, p)), abs=0.015)
    assert abs(certain.leads - (plain.leads - B)) <= 3          # Binomial(B) + Binomial(L) = Binomial(B + L)
    gamma = np.random.default_rng(1).gamma(2.0, B / 2.0, size=(400, 1))     # same mean, uncertain
    uncertain = leads_needed(post, 40, 1, baseline=gamma, sims_per_draw=50)
    assert uncertain.leads > certain.leads                      # an uncertain inflow needs a safety margin
    enough = leads_needed(post, 40, 1, baseline=np.full((3, 1), 400), sims_per_draw=5)
    assert enough.leads == 0 and "baseline" in enough.message
    with pytest.raises(SimulationError, match="baseline"):
        leads_needed(post, 40, 3, baseline=np.ones((5, 2)))


def test_month_shocks_enter_the_plan(demo):
    """With month shocks P(hit) carries month-to-month variation: the plan is calibrated in
    futures with fresh shocks, and asks for more leads than the no-shock plan."""
    _, truth, pipe, tr = demo
    K = truth.n_stages
    wild = PosteriorFunnel(truth.stages, truth.rates, truth.entry, deal_value=truth.deal_value,
                           shock_sd=np.full((1, K + 1), 0.4))
    rate = leads_from_history(tr)
    target = math.ceil(1.25 * expected_wins(truth, pipe, rate, 12)[0].sum())
    calm = leads_needed(truth, target, 12, pipeline=pipe, seed=1)
    res = leads_needed(wild, target, 12, pipeline=pipe, seed=1)
    assert res.leads > calm.leads
    from funnel_models.simulate import forecast
    hits = forecast(wild, pipe, res.monthly_leads, 12, seed=77, sims_per_draw=800).probability_at_least(target, 12)
    assert abs(hits - 0.8) <= 0.06, hits
