"""L1 tests of the funnel models: conjugate oracle, one linear predictor, lifecycle, persistence.

Real nutpie sampling is used where the test proves the model (one pooled memoryless fit,
shared by the module); the one-predictor test uses ``pymc.testing.mock_sample``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import FunnelWarning, ModelConfigError
from funnel_models.models import ConjugateFunnel, FunnelModel, make_model
from funnel_models.models.graph import build_graph, theta_names
from funnel_models.models.predictor import log_probabilities, probabilities
from funnel_models.models.structure import build_design, safe_name

POOLED = {"time_in_stage": "off", "month_effects": "off"}


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
    m = FunnelModel(demo.spec, POOLED, {"progress": False, "seed": 3}, cache_dir=cache)
    return m.fit(demo_transitions.groupby(["month", "from_stage", "to_stage", "age"], as_index=False)["n"].sum())


def test_design_destinations_follow_data(demo, demo_transitions):
    d = build_design(demo_transitions, demo.spec)
    rows = {r.source: r.dest for r in d.rows}
    # staying is the reference of an open stage; the skip LEAD -> SQL is in the data
    assert rows["LEAD"][0] == "LEAD" and "SQL" in rows["LEAD"] and "WON" not in rows["LEAD"]
    assert "WON" in rows["NEGO"] and "WON" in rows["PROP"]
    assert rows["ENTRY"][0] == "LEAD"
    assert int(d.counts.sum()) == int(demo_transitions["n"].sum())


def test_mcmc_agrees_with_conjugate_oracle(demo, demo_transitions, pooled_fit):
    """Pooled data: posterior means within 0.01, 90% intervals overlapping."""
    q = ConjugateFunnel(demo.spec, POOLED).fit(demo_transitions)
    qpost = q.posterior_funnel(draws=4000, seed=1)
    mpost = pooled_fit.posterior_funnel()
    for name in ("conversion", "win_rate"):
        a, b = getattr(mpost, name)(), getattr(qpost, name)()
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 0.01), name
        lo_a, hi_a = np.quantile(a, [0.05, 0.95], axis=0)
        lo_b, hi_b = np.quantile(b, [0.05, 0.95], axis=0)
        assert np.all((lo_a <= hi_b) & (lo_b <= hi_a)), name
    states = list(demo.spec.states)
    for src, mean in q.row_posterior_mean().items():
        k = states.index(src) if src != "ENTRY" else None
        got = mpost.entry.mean(0) if k is None else mpost.rates[:, k, 0].mean(0)
        assert np.abs(got[[states.index(x) for x in mean.index]] - mean.to_numpy()).max() < 0.01


def test_diagnostics_and_summary(pooled_fit):
    d = pooled_fit.diagnostics(warn=False)
    assert d.divergences == 0 and d.r_hat_max < 1.02 and d.ess_bulk_min > 300
    table = pooled_fit.summary()
    assert list(table["stage"]) == list(pooled_fit.spec.codes)
    assert ((table["conversion_lo"] <= table["conversion_mean"]) &
            (table["conversion_mean"] <= table["conversion_hi"])).all()


def test_posterior_predictive_covers_observed(pooled_fit):
    ppc = pooled_fit.predictive(draws=200, seed=2)
    obs, sim = ppc["observed"], ppc["predicted"]
    lo, hi = np.quantile(sim, [0.05, 0.95], axis=0)
    inside = ((obs >= lo) & (obs <= hi))[obs.sum(1) > 0]
    assert 0.8 <= inside.mean() <= 1.0


def test_fit_is_cached_and_tampered_cache_is_a_miss(demo, demo_transitions, pooled_fit, tmp_path):
    tr = demo_transitions.groupby(["month", "from_stage", "to_stage", "age"], as_index=False)["n"].sum()
    again = FunnelModel(demo.spec, POOLED, {"progress": False, "seed": 3}, cache_dir=pooled_fit.cache.folder).fit(tr)
    assert "cache_load" in again.timings
    np.testing.assert_allclose(again.posterior_funnel().rates, pooled_fit.posterior_funnel().rates)
    path = pooled_fit.save(tmp_path / "fit.nc")
    loaded = FunnelModel.load(path)
    assert loaded.fit_hash() == pooled_fit.fit_hash()
    np.testing.assert_allclose(loaded.posterior_funnel().rates, pooled_fit.posterior_funnel().rates)
    # change one draw inside the file: the digest no longer matches, so the cache refits with a warning
    import h5py
    with h5py.File(path, "r+") as f:
        f["posterior/intercept"][0, 0, 0] += 0.5
    with pytest.raises(ModelConfigError, match="changed"):
        FunnelModel.load(path)


def test_a_fit_of_another_model_revision_is_refitted_not_reused(demo, demo_transitions, pooled_fit, tmp_path,
                                                                monkeypatch):
    import funnel_models.models.markov as markov
    path = pooled_fit.save(tmp_path / "old.nc")
    old_key = pooled_fit.fit_hash()
    monkeypatch.setattr(markov, "_FORMAT_VERSION", "next")
    with pytest.raises(ModelConfigError, match="another version of the model"):
        FunnelModel.load(path)
    tr = demo_transitions.groupby(["month", "from_stage", "to_stage", "age"], as_index=False)["n"].sum()
    fresh = FunnelModel(demo.spec, POOLED, {"progress": False, "seed": 3}, cache_dir=pooled_fit.cache.folder)
    fresh._set_data(tr)
    assert fresh.fit_hash() != old_key                   # another key: the cached fit is not found


def test_config_errors_name_the_key(demo):
    with pytest.raises(ModelConfigError, match="did you mean 'factors'"):
        FunnelModel(demo.spec, {"factor": ["region"]})
    with pytest.raises(ModelConfigError, match="not an open stage"):
        FunnelModel(demo.spec, {"change_points": [{"stage": "NOPE", "month": "2024-01"}]})
    with pytest.raises(ModelConfigError, match="not fitted"):
        FunnelModel(demo.spec).posterior_funnel()
    with pytest.raises(ModelConfigError, match="unknown model"):
        make_model("nope", demo.spec)


def test_one_linear_predictor_for_graph_likelihood_and_posterior_funnel(demo, demo_transitions):
    """A draw gives the same log-probabilities in the PyMC graph's likelihood and in NumPy, and
    posterior_funnel's rates equal the predictor's probabilities of the matching observation,
    with segment factors, a random walk, a change point and time in stage all on."""
    import pytensor
    from pymc.testing import mock_sample

    from funnel_models.models import idata_access as acc
    factors = ["region", "channel"]
    cfg = {"factors": factors, "time_varying": True, "time_in_stage": "on", "month_effects": "off",
           "change_points": [{"stage": "DEMO", "month": "2024-03"}], "cold_after": 6}
    m = FunnelModel(demo.spec, cfg, {"progress": False}, cache_dir=False)
    m._set_data(demo_transitions)
    m.parameterization = {f: "non_centered" for f in factors}
    model = build_graph(m.design, m.model_config, m.parameterization, with_age=True)
    with model:
        idata = mock_sample(draws=4)
    m.idata, m.variant = idata, m.variant.__class__(True, False)
    d = m.design
    names = [n for n in theta_names(d, 1) if acc.has(idata, n)]
    theta = {n: acc.draws(idata, n) for n in names}
    fs = [safe_name(f) for f in factors]
    numpy_lp = log_probabilities(theta, d.arrays(), n_slots=d.n_slots, factors=fs, n_change=1)
    # the graph's own likelihood term, evaluated at the same draws
    loglik = pytensor.function([model[n] for n in names], model["transition_loglik"], on_unused_input="ignore")
    for i in range(2):
        graph_value = loglik(*[theta[n][i] for n in names])
        numpy_value = np.sum(np.where(d.counts > 0, d.counts * numpy_lp[i], 0.0))
        assert graph_value == pytest.approx(numpy_value, rel=1e-9)
    # posterior_funnel: the rates of stage DEMO at age 2 for North/Web in the last month
    post = m.posterior_funnel({"region": "North", "channel": "Web"})
    probs = probabilities(theta, d.arrays(), n_slots=d.n_slots, factors=fs, n_change=1)
    lv = {f: d.factors[f].index(v) for f, v in (("region", "North"), ("channel", "Web"))}
    row = d.row_index("DEMO")
    bucket = 2
    obs = np.flatnonzero((d.row == row) & (d.age == bucket) & (d.month == len(d.months) - 1) &
                         (d.levels["region"] == lv["region"]) & (d.levels["channel"] == lv["channel"]))
    assert obs.size == 1
    states = list(demo.spec.states)
    cols = [states.index(x) for x in d.rows[row].dest]
    np.testing.assert_allclose(post.rates[:, states.index("DEMO"), 2][:, cols],
                               probs[:, obs[0], :len(cols)], rtol=1e-10)


def test_conjugate_honours_or_refuses_every_setting(demo, demo_transitions):
    q = ConjugateFunnel(demo.spec, {"factors": ["region"], **POOLED}).fit(demo_transitions)
    north = q.row_counts({"region": "North"})
    pooled = q.row_counts()
    assert all((north[k][1] <= pooled[k][1]).all() for k in pooled)
    with pytest.raises(ModelConfigError, match="was not kept"):
        q.row_counts({"channel": "Web"})
    with pytest.raises(ModelConfigError):
        ConjugateFunnel(demo.spec, concentration=0)
    with pytest.raises(ModelConfigError, match="cannot honour"):
        ConjugateFunnel(demo.spec, {"month_effects": "on"})
    cp = ConjugateFunnel(demo.spec, {"change_points": [{"stage": "DEMO", "month": "2024-06"}], **POOLED})
    cp.fit(demo_transitions)
    before = cp.posterior_funnel(month="2024-05", draws=500).rates[:, 3, 0]
    after = cp.posterior_funnel(month="2024-06", draws=500).rates[:, 3, 0]
    assert not np.allclose(before.mean(0), after.mean(0))    # the two sides use their own counts


def test_conjugate_time_in_stage_by_bayes_factor():
    """The demo is memoryless; the cold-leads generator's hazards decay with age."""
    from funnel_models.datasets.coldleads import cold_leads_data
    from funnel_models.workflow import load_data
    d = demo_data(seed=3, months=18, leads_per_month=200)
    assert not ConjugateFunnel(d.spec).fit(d.history).time_in_stage
    cold = load_data("coldleads", demo_months=18)
    q = ConjugateFunnel(cold.spec).fit(cold.snapshots())
    assert q.time_in_stage and "Bayes factor" in q.notes[-1]
    del cold_leads_data


def test_conjugate_age_buckets_without_data_keep_the_younger_rates():
    from funnel_models.models.conjugate import bucket_priors
    counts = np.array([[900.0, 80.0, 20.0], [400.0, 10.0, 5.0], [0.0, 0.0, 0.0], [5000.0, 0.0, 50.0]])
    a = bucket_priors(counts, 1.0)
    assert np.allclose(a[0], 1.0) and np.allclose(a.sum(-1), 3.0)          # same weight everywhere
    post = counts + a
    mean = post / post.sum(-1, keepdims=True)
    assert np.allclose(mean[2], mean[1])                                     # no data: the younger bucket's
    assert mean[3, 1] < 1e-3                                                 # data outweigh the prior


def test_unobserved_stage_gets_flagged():
    from funnel_models.posterior import PosteriorFunnel
    rows = {"ENTRY": (["A"], np.ones((3, 1))), "A": (["A", "B", "LOST"], np.tile([0.5, 0.3, 0.2], (3, 1)))}
    post = PosteriorFunnel.from_rows(("A", "B"), rows)
    assert post.meta["unobserved_rows"] == ["B"]
    assert pd.Series(post.rates[0, 1, 0]).sum() == pytest.approx(1.0)
