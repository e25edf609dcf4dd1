"""A JAX fit's chains shared with a second process (models/chainsplit.py).

Truth is the conjugate posterior of a normal mean: the chains sampled in the worker must
be draws from it, as the ones sampled here are, and not copies of them.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from funnel_models.models import chainsplit
from funnel_models.models.base import fit_summary
from funnel_models.models.config import SamplerConfig
from funnel_models.models.sampling import sample_compiled

from normal_mean import graph as _graph, posterior


def _sample(y: np.ndarray, cfg: SamplerConfig, tag: str):
    key = f"test-split-{tag}"                     # a graph no other test compiled
    return sample_compiled(key, lambda static: _graph(y, static), {"y": y}, cfg, False)


def test_half_of_the_chains_come_from_the_worker_and_sample_the_posterior():
    y = np.random.default_rng(7).normal(2.5, 1.0, 40)
    mean, sd = posterior(y)
    cfg = SamplerConfig(backend="jax", draws=500, tune=300, chains=4, processes=2, progress=False)
    idata, timing = _sample(y, cfg, "truth")
    assert timing["split"] == 1.0
    post = idata.posterior["mu"]
    assert list(post["chain"].values) == [0, 1, 2, 3] and post.sizes["draw"] == 500
    assert idata.sample_stats.sizes["chain"] == 4
    here, there = post.values[:2].ravel(), post.values[2:].ravel()
    assert not np.allclose(np.sort(here), np.sort(there))          # other draws, not a copy
    for half in (here, there):
        # 1,000 draws per half: the Monte Carlo error of the mean is well under sd / 4
        assert abs(half.mean() - mean) < sd / 2, (half.mean(), mean)
        assert 0.7 < half.std() / sd < 1.3
    again, _ = _sample(y, cfg, "truth-again")                      # reproducible from the seed
    np.testing.assert_allclose(again.posterior["mu"].values, post.values)


def test_a_failed_worker_leaves_its_chains_to_this_process(monkeypatch):
    def broken(self):
        raise chainsplit.ChainProcessError("the second sampling process failed: it ended")
    monkeypatch.setattr(chainsplit.SecondProcess, "result", broken)
    y = np.random.default_rng(8).normal(-1.0, 1.0, 30)
    cfg = SamplerConfig(backend="jax", draws=200, tune=200, chains=4, processes=2, progress=False)
    with pytest.warns(RuntimeWarning, match="sampling its chains here instead"):
        idata, _ = _sample(y, cfg, "fallback")
    assert list(idata.posterior["chain"].values) == [0, 1, 2, 3]


def test_a_worker_that_ended_is_reported_and_replaced():
    cfg = SamplerConfig(backend="jax", draws=50, tune=50, chains=2, processes=2, progress=False)
    job = chainsplit.SecondProcess(_graph(np.zeros(5), True), cfg, 1, 1)
    job._worker.proc.kill()
    with pytest.raises(chainsplit.ChainProcessError, match="second sampling process failed"):
        job.result()
    assert chainsplit._worker() is not job._worker            # the next job gets a live worker


def test_processes_auto_splits_only_full_size_fits_with_two_chains():
    big = SamplerConfig(draws=1000, tune=500, chains=4)
    assert chainsplit.processes_for(big) == (2 if len(__import__("os").sched_getaffinity(0)) >= 2 else 1)
    assert chainsplit.processes_for(SamplerConfig(draws=200, tune=200, chains=4)) == 1
    assert chainsplit.processes_for(big.model_copy(update={"chains": 1})) == 1
    assert chainsplit.processes_for(big.model_copy(update={"processes": 1})) == 1
    assert chainsplit.processes_for(SamplerConfig(draws=50, tune=50, chains=2, processes=2)) == 2
    assert chainsplit.child_seed(0) != chainsplit.child_seed(1) and chainsplit.child_seed(0) != 0


def test_the_worker_does_not_run_the_callers_script_again(tmp_path):
    # a user's script without an `if __name__ == "__main__"` guard
    marker = tmp_path / "runs.txt"
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        with Path({str(marker)!r}).open("a") as fh:
            fh.write("ran\\n")
        from funnel_models.models.config import SamplerConfig
        from funnel_models.models.sampling import data_container, sample_compiled
        import pymc as pm
        def graph(static):
            with pm.Model() as m:
                d = data_container(pm, "y", np.ones(3), static)
                mu = pm.Normal("mu", 0, 1)
                pm.Potential("lik", -0.5 * ((d - mu) ** 2).sum())
            return m
        cfg = SamplerConfig(backend="jax", draws=50, tune=50, chains=2, processes=2, progress=False)
        idata, t = sample_compiled("script", graph, {{"y": np.ones(3)}}, cfg, False)
        print(int(t["split"]), idata.posterior.sizes["chain"])
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1", "2"]
    assert marker.read_text() == "ran\n"


def test_fit_summary_says_how_many_graphs_ran_on_two_processes():
    assert fit_summary({"graphs": 3.0, "reused": 0.0, "compile": 6.0, "sampling": 52.0, "split": 3.0}) == \
        "compiled 3 graph(s) in 6.0 s; sampled 52 s (3 of them on two processes)"


def test_a_fitting_process_that_dies_leaves_no_worker_files(tmp_path):
    # os._exit skips every exit handler, as a kernel killed by its notebook server does
    script = tmp_path / "die.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        from normal_mean import graph
        from funnel_models.models import chainsplit
        from funnel_models.models.config import SamplerConfig
        from funnel_models.models.sampling import sample_compiled
        cfg = SamplerConfig(backend="jax", draws=50, tune=50, chains=2, processes=2, progress=False)
        sample_compiled("die", lambda s: graph(np.ones(3), s), {"y": np.ones(3)}, cfg, False)
        print(chainsplit._WORKER.folder.name, flush=True)
        os._exit(0)
    """))
    tests_dir = str(Path(__file__).resolve().parent)
    r = subprocess.run([sys.executable, str(script), tests_dir], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = r.stdout.strip()
    assert Path(folder).name.startswith("funnel-chains-")
    for _ in range(300):                         # the worker sees its input close, cleans up and ends
        if not Path(folder).exists():
            break
        time.sleep(0.1)
    assert not Path(folder).exists()
