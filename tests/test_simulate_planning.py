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
from funnel_models.simulate.core import pipeline_counts, simulate_chain


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
    return PosteriorFunnel(stages=("A",), P=P, entry=entry, deal_value=np.full(n_draws, 1000.0))


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
        frontier = {int(t) for s in frontier if s < K for t in np.flatnonzero(post.P[0, s] > 0)}
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
    no_value = PosteriorFunnel(truth.stages, truth.P, truth.entry)
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
    x0 = pipeline_counts(truth, pipe)
    post = synthetic_posterior(truth, 500)
    n = 400
    for i, (window, mult) in enumerate((((1, 12), 1.25), ((4, 9), 1.3))):
        a, T = window
        target = math.ceil(mult * expected_wins(truth, pipe, rate, T)[0, a - 1:T].sum())
        res = leads_needed(post, target, window, pipeline=pipe, confidence=0.8, seed=i)
        assert res.feasible
        rep = np.repeat(truth.P, n, 0), np.repeat(truth.entry, n, 0)
        ent, _ = simulate_chain(*rep, x0, res.monthly_leads, T, np.random.default_rng(1000 + i))
        hits = np.mean(ent[:, a - 1:T, truth.n_stages].sum(1) >= target)
        assert abs(hits - 0.8) <= 0.08, (window, hits)
        # the model's own probability for the naive plan matches its simulated hit rate
        ent_n, _ = simulate_chain(*rep, x0, np.full(T, res.naive_leads), T, np.random.default_rng(2000 + i))
        naive_hits = np.mean(ent_n[:, a - 1:T, truth.n_stages].sum(1) >= target)
        assert abs(naive_hits - res.naive_probability) <= 0.08
