"""One compiled graph serves later fits of the same structure and data shapes.

Truth here is the conjugate posterior of a normal mean, not another run of our sampler:
a graph compiled on one data set and reused on another must give the second data set's
posterior, not the first one's.
"""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models.models.config import SamplerConfig
from funnel_models.models.sampling import sample_compiled
from funnel_models.models.base import fit_summary

from normal_mean import graph as _graph, posterior as _posterior


@pytest.mark.parametrize("backend", ["jax", "numba"])
def test_a_reused_graph_samples_the_new_data(backend):
    cfg = SamplerConfig(backend=backend, draws=400, tune=300, chains=2, progress=False)
    rng = np.random.default_rng(4)
    key = f"test-reuse-{backend}-{rng.integers(1 << 30)}"       # a graph no other test compiled
    first, second = rng.normal(-3.0, 1.0, 50), rng.normal(5.0, 1.0, 50)
    third = rng.normal(1.0, 1.0, 80)            # another size: JAX compiles anew, Numba's graph takes it
    runs = [sample_compiled(key, lambda static, y=y: _graph(y, static), {"y": y}, cfg, False)
            for y in (first, second, third)]
    assert [t["reused"] for _, t in runs] == [0.0, 1.0, 0.0 if backend == "jax" else 1.0]
    assert runs[1][1]["compile"] < runs[0][1]["compile"]
    for y, (idata, _) in zip((first, second, third), runs):
        mean, sd = _posterior(y)
        draws = idata.posterior["mu"].values.ravel()
        # 800 draws: the Monte Carlo error of the mean is well under sd / 5
        assert abs(draws.mean() - mean) < sd / 2, (draws.mean(), mean)
        assert 0.7 < draws.std() / sd < 1.3


def test_fit_summary_says_what_was_compiled_and_reused():
    assert fit_summary({"cache_load": 0.2}) == "loaded from the fit cache"
    assert fit_summary({}) == "fitted without a sampler"
    assert fit_summary({"graphs": 3.0, "reused": 0.0, "compile": 6.04, "sampling": 52.3}) == \
        "compiled 3 graph(s) in 6.0 s; sampled 52 s"
    assert fit_summary({"graphs": 3.0, "reused": 2.0, "compile": 1.0, "sampling": 40.0}) == \
        "compiled 1 graph(s) in 1.0 s, reused 2 compiled graph(s); sampled 40 s"
    assert fit_summary({"graphs": 2.0, "reused": 2.0, "compile": 0.0, "sampling": 9.6}) == \
        "reused 2 compiled graph(s); sampled 10 s"


def test_backend_auto_is_jax_for_one_fit_and_numba_for_several():
    assert SamplerConfig().backend == "auto" and SamplerConfig().compiler == "jax"
    assert SamplerConfig().for_several_fits().compiler == "numba"
    assert SamplerConfig(backend="jax").for_several_fits().compiler == "jax"      # a chosen backend stays


def test_a_batch_samples_with_numba_unless_a_file_chooses(tmp_path, capsys):
    from funnel_models.reports.runner import _several_fits, plan_run
    files = {"a.yaml": "source: demo\n", "b.yaml": "source: demo\nsampler: {backend: jax}\n",
             "c.yaml": "source: demo\nmodel: conjugate\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    plans = [plan_run(None, tmp_path / name) for name in files]
    lines: list[str] = []
    out = _several_fits(plans, True, lines.append)
    assert [p.params.sampler.backend for p in out] == ["numba", "jax", "auto"]
    assert [p.values["sampler"]["backend"] for p in out] == ["numba", "jax", "auto"]   # the notebook's cache key
    assert "Numba" in lines[0] and "Numba" in capsys.readouterr().err
    assert _several_fits(plans[:1], True, lines.append) == plans[:1]                   # one file: one fit


def test_backtest_windows_sample_with_numba():
    from funnel_models.evaluation.backtest import backtest
    from funnel_models.workflow import load_data
    r = backtest(load_data("demo", demo_months=18), horizon=1, n_windows=1, model="conjugate",
                 modes=("conditional",), progress=False)
    assert r.config["sampler_config"]["backend"] == "numba"
