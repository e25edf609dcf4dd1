"""L1 tests of the funnel models: conjugate oracle, lifecycle, predictive checks, persistence.

Real nutpie sampling is used where the test proves the model; the compiled model is
shared within the session so the suite pays Numba compilation once per graph.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import FunnelWarning, ModelConfigError
from funnel_models.models import ConjugateFunnel, FunnelModel
from funnel_models.models.structure import build_structure


@pytest.fixture(scope="module")
def demo():
    return demo_data(seed=7, months=24, leads_per_month=250, change_month=None)


@pytest.fixture(scope="module")
def demo_transitions(demo):
    snaps = derive.snapshots_from_history(demo.history, demo.spec, cutoff=demo.cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        return derive.transitions(snaps, demo.spec, by=["region", "channel"])


@pytest.fixture(scope="module")
def pooled_fit(demo, demo_transitions, tmp_path_factory):
    cache = tmp_path_factory.mktemp("fitcache")
    m = FunnelModel(demo.spec, {}, {"progress": False, "seed": 3}, cache_dir=cache)
    return m.fit(demo_transitions.groupby(["month", "from_stage", "to_stage"], as_index=False)["n"].sum())


def test_structure_destinations_follow_data(demo, demo_transitions):
    st = build_structure(demo_transitions, demo.spec)
    rows = {r.source: r.dest for r in st.rows}
    # staying is the reference of an open stage; the skip LEAD -> SQL is in the data
    assert rows["LEAD"][0] == "LEAD" and "SQL" in rows["LEAD"] and "WON" not in rows["LEAD"]
    # the last stage can be won; PROP -> WON skips exist in the demo truth
    assert "WON" in rows["NEGO"] and "WON" in rows["PROP"]
    assert rows["ENTRY"][0] == "LEAD"
    total = sum(int(r.counts.sum()) for r in st.rows)
    assert total == int(demo_transitions["n"].sum())


def test_mcmc_agrees_with_conjugate_oracle(demo, demo_transitions, pooled_fit):
    """Pooled data: posterior means within 0.01, 90% intervals overlapping."""
    q = ConjugateFunnel(demo.spec).fit(demo_transitions)
    qpost = q.posterior_funnel(draws=4000, seed=1)
    mpost = pooled_fit.posterior_funnel()
    for name in ("conversion", "win_rate"):
        a, b = getattr(mpost, name)(), getattr(qpost, name)()
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 0.01), name
        lo_a, hi_a = np.quantile(a, [0.05, 0.95], axis=0)
        lo_b, hi_b = np.quantile(b, [0.05, 0.95], axis=0)
        assert np.all((lo_a <= hi_b) & (lo_b <= hi_a)), name
    means = q.row_posterior_mean()
    for row in pooled_fit.structure.rows:
        p = pooled_fit.row_probabilities(row, None, pooled_fit.structure.months[-1]).mean(0)
        assert np.abs(p - means[row.source].reindex(row.dest).to_numpy()).max() < 0.01


def test_diagnostics_and_summary(pooled_fit):
    d = pooled_fit.diagnostics(warn=False)
    assert d["divergences"] == 0 and d["r_hat_max"] < 1.02 and d["ess_bulk_min"] > 300
    table = pooled_fit.summary()
    assert list(table["stage"]) == list(pooled_fit.spec.codes)
    assert ((table["conversion_lo"] <= table["conversion_mean"]) & (table["conversion_mean"] <= table["conversion_hi"])).all()


def test_posterior_predictive_covers_observed(pooled_fit):
    ppc = pooled_fit.sample_posterior_predictive(draws=200, seed=2)
    obs, sim = ppc["observed"], ppc["predicted"]
    lo, hi = np.quantile(sim, [0.05, 0.95], axis=0)
    inside = ((obs >= lo) & (obs <= hi))[obs.sum(1) > 0]
    assert 0.8 <= inside.mean() <= 1.0


def test_prior_predictive_is_weakly_informative(demo, demo_transitions):
    m = FunnelModel(demo.spec, {"factors": ["region"]}, {"progress": False}, cache_dir=False)
    prior = m.sample_prior_predictive(demo_transitions, draws=300, seed=1)
    stay = prior["probabilities"][:, :, 0]
    # the priors allow slow and fast funnels alike, not one fixed answer
    assert np.quantile(stay, 0.1) < 0.2 and np.quantile(stay, 0.9) > 0.5
    assert prior["predicted"].shape[1:] == prior["observed"].shape


def test_fit_is_cached_and_save_load_roundtrip(demo, demo_transitions, pooled_fit, tmp_path):
    tr = demo_transitions.groupby(["month", "from_stage", "to_stage"], as_index=False)["n"].sum()
    again = FunnelModel(demo.spec, {}, {"progress": False, "seed": 3}, cache_dir=pooled_fit.cache_dir).fit(tr)
    assert "cache_load" in again.timings and "sampling" not in again.timings
    np.testing.assert_allclose(again.posterior_funnel().P, pooled_fit.posterior_funnel().P)
    path = pooled_fit.save(tmp_path / "fit.nc")
    loaded = FunnelModel.load(path)
    assert loaded.fit_hash() == pooled_fit.fit_hash()
    np.testing.assert_allclose(loaded.posterior_funnel().P, pooled_fit.posterior_funnel().P)
    with pytest.raises(ModelConfigError, match="different model_config"):
        FunnelModel.load(path, model_config={"factors": ["region"]})


def test_config_errors_name_the_key(demo):
    with pytest.raises(ModelConfigError, match="did you mean 'factors'"):
        FunnelModel(demo.spec, {"factor": ["region"]})
    with pytest.raises(ModelConfigError, match="not an open stage"):
        FunnelModel(demo.spec, {"change_points": [{"stage": "NOPE", "month": "2024-01"}]})
    with pytest.raises(ModelConfigError, match="not fitted"):
        FunnelModel(demo.spec).posterior_funnel()


def test_mock_sampled_segment_plumbing(demo, demo_transitions):
    """Fast plumbing check with pymc.testing.mock_sample: segment lookups and shapes."""
    import pymc as pm
    from pymc.testing import mock_sample

    m = FunnelModel(demo.spec, {"factors": ["region", "channel"], "time_varying": True},
                    {"progress": False}, cache_dir=False)
    model = m.build_model(demo_transitions)
    with model:
        m.idata = mock_sample(draws=20)
    post = m.posterior_funnel({"region": "North"}, month="2024-06")
    assert post.P.shape == (20, 8, 8)
    np.testing.assert_allclose(post.P.sum(-1), 1.0)
    with pytest.raises(ModelConfigError, match="unknown level"):
        m.posterior_funnel({"region": "Atlantis"})
    assert isinstance(pm.Model, type)


def test_conjugate_segments_and_errors(demo, demo_transitions):
    q = ConjugateFunnel(demo.spec, factors=["region"]).fit(demo_transitions)
    north = q.row_counts({"region": "North"})
    pooled = q.row_counts()
    assert all((north[k][1] <= pooled[k][1]).all() for k in pooled)
    with pytest.raises(ModelConfigError, match="was not kept"):
        q.row_counts({"channel": "Web"})
    with pytest.raises(ModelConfigError):
        ConjugateFunnel(demo.spec, concentration=0)


def test_unobserved_stage_gets_flagged():
    from funnel_models.posterior import PosteriorFunnel
    rows = {"ENTRY": (["A"], np.ones((3, 1))), "A": (["A", "B", "LOST"], np.tile([0.5, 0.3, 0.2], (3, 1)))}
    post = PosteriorFunnel.from_rows(("A", "B"), rows)
    assert post.meta["unobserved_rows"] == ["B"]
    assert pd.Series(post.P[0, 1]).sum() == pytest.approx(1.0)
