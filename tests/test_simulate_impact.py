"""Tests of process_change_impact() on the demo's known process change."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from funnel_models.datasets.demo import demo_data
from funnel_models.errors import SimulationError
from funnel_models.simulate import expected_wins, process_change_impact, synthetic_posterior


@pytest.fixture(scope="module")
def truth():
    return demo_data().truth


def test_known_change(truth):
    before = truth.posterior(month=truth.change_month - np.timedelta64(31, "D"))
    after = truth.posterior(month=truth.change_month)
    k = before.stage_index(truth.change_stage)
    res = process_change_impact(before, after, truth.change_stage, new_leads=300, horizon=12)
    assert res.rate_before[0] == pytest.approx(before.conversion()[0, k])
    assert res.rate_after[0] == pytest.approx(after.conversion()[0, k])
    assert res.uplift[0] > 0 and res.p_improved == 1.0
    # only the DEMO row differs, so the isolated effect equals the full difference
    exact = expected_wins(after, None, 300, 12) - expected_wins(before, None, 300, 12)
    np.testing.assert_allclose(res.extra_wins, exact)
    assert res.extra_wins_per_month[0] > 0
    tab = res.table()
    assert list(tab["quantity"]) == ["rate_before", "rate_after", "uplift", "relative_uplift", "extra_wins_per_month"]


def test_paired_draws_and_no_change(truth):
    base = synthetic_posterior(truth.posterior(), 300, concentration=100.0, seed=1)
    same = process_change_impact(base, base, "DEMO", new_leads=200)
    assert np.all(same.uplift == 0) and same.p_improved == 0.0 and np.all(same.extra_wins == 0)
    better = base.adjust(conversion={"DEMO": 1.05})
    res = process_change_impact(base, better, "DEMO", new_leads=200)
    assert res.p_improved == 1.0   # pairing by draw: every draw improved even though the draws overlap
    assert np.mean(better.conversion()[:, 3] > np.roll(base.conversion()[:, 3], 1)) < 1.0


def test_isolates_the_stage(truth):
    before = synthetic_posterior(truth.posterior(), 50, concentration=100.0, seed=2)
    after = before.adjust(conversion={"DEMO": 1.2, "SQL": 0.5})
    res = process_change_impact(before, after, "DEMO", new_leads=200, horizon=8)
    only_demo = before.adjust(conversion={"DEMO": 1.2})
    want = expected_wins(only_demo, None, 200, 8) - expected_wins(before, None, 200, 8)
    np.testing.assert_allclose(res.extra_wins, want)


def test_errors(truth):
    post = truth.posterior()
    with pytest.raises(SimulationError, match="same draws"):
        process_change_impact(post, synthetic_posterior(post, 3), "DEMO", new_leads=10)
    with pytest.raises(SimulationError, match="unknown stage"):
        process_change_impact(post, post, "XX", new_leads=10)
    other = replace(post, stages=tuple(s.lower() for s in post.stages))
    with pytest.raises(SimulationError, match="different stages"):
        process_change_impact(post, other, "DEMO", new_leads=10)


def test_mix_replaces_only_the_stage_rates_at_every_age(truth):
    from simulate_oracle import aged
    before = aged(synthetic_posterior(truth.posterior(), 40, concentration=100.0, seed=3), 4, decay=0.6)
    after = before.adjust(conversion={"DEMO": 1.2, "SQL": 0.5}, stall={"PROP": 2.0})
    res = process_change_impact(before, after, "DEMO", new_leads=200, horizon=8, pipeline={"DEMO": 30, "PROP": 20})
    only_demo = before.adjust(conversion={"DEMO": 1.2})
    want = (expected_wins(only_demo, {"DEMO": 30, "PROP": 20}, 200, 8)
            - expected_wins(before, {"DEMO": 30, "PROP": 20}, 200, 8))
    np.testing.assert_allclose(res.extra_wins, want, atol=1e-10)
    assert res.p_improved == 1.0
    with pytest.raises(SimulationError, match="ages"):
        process_change_impact(before, synthetic_posterior(truth.posterior(), 40), "DEMO", new_leads=10)
