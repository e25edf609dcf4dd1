"""Benchmark: the likelihood term of the Markov model, three ways, on the demo's design.

The model's likelihood is ``sum(counts * log_softmax([0, eta]))`` over the stacked
(padded) observations. Written as

``potential``
    a ``pm.Potential`` (what the model uses; the multinomial coefficient is a constant);
``multinomial``
    one ``pm.Multinomial`` over the padded observations (``p = softmax``, padding has
    probability 0), which would give PyMC's own predictive sampling and pointwise
    log-likelihood for free;
``customdist``
    a ``pm.CustomDist`` whose logp is the potential's formula,

each compiled by nutpie with the JAX and the Numba backend in a fresh process (compile and
sampling split, the same data and priors: the memoryless model with region x channel
effects and the change point). Prints medians and the ratios against ``potential``.

Usage: python benchmarks/bench_likelihood.py [--runs 2] [--backends jax numba]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import pandas as pd
from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.models.config import ModelConfig
from funnel_models.models.graph import build_graph, graph_data
from funnel_models.models.structure import ChangePoint, build_design
import nutpie, pymc as pm, pytensor.tensor as pt
kind, backend = sys.argv[1], sys.argv[2]
d = demo_data()
tr = derive.transitions(derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff), d.spec,
                        by=["region", "channel"])
des = build_design(tr, d.spec, factors=["region", "channel"],
                   change_points=[ChangePoint("DEMO", pd.Timestamp("2025-01-01"))])
cfg = ModelConfig(factors=["region", "channel"])
model = build_graph(des, cfg, {"region": "centered", "channel": "centered"}, with_age=False)
if kind != "potential":
    logp_var = model["transition_loglik"]
    # rebuild the same probabilities, then swap the Potential for a distribution
    from funnel_models.models.predictor import log_probabilities
    from funnel_models.models.graph import theta_names
    with model:
        theta = {n: model[n] for n in theta_names(des, 1) if n in model.named_vars}
        data = {k: model["d_" + k] for k in des.arrays()}
        lp = log_probabilities(theta, data, n_slots=des.n_slots, factors=["region", "channel"], n_change=1, xp=pt)
        model.potentials.remove(logp_var)
        if kind == "multinomial":
            pm.Multinomial("y", n=des.counts.sum(1), p=pt.exp(lp), observed=des.counts)
        else:
            pm.CustomDist("y", lp, logp=lambda value, lp_: pt.sum(value * lp_, axis=-1), observed=des.counts)
t0 = time.perf_counter()
if backend == "jax":
    cm = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
else:
    cm = nutpie.compile_pymc_model(model)
t1 = time.perf_counter()
idata = nutpie.sample(cm, draws=1000, tune=500, chains=4, cores=2, seed=1, progress_bar=False)
t2 = time.perf_counter()
print(json.dumps({"compile": t1 - t0, "sampling": t2 - t1, "divergences": int(idata.sample_stats.diverging.sum())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--backends", nargs="+", default=["jax", "numba"])
    args = ap.parse_args()
    res: dict[tuple[str, str], list[dict]] = {}
    for backend in args.backends:
        for kind in ("potential", "multinomial", "customdist"):
            for _ in range(args.runs):
                env_dir = tempfile.mkdtemp()
                out = subprocess.run([sys.executable, "-c", CHILD, kind, backend], capture_output=True, text=True,
                                     env={**__import__("os").environ, "PYTENSOR_FLAGS": f"compiledir={env_dir}",
                                          "NUMBA_CACHE_DIR": env_dir})
                if out.returncode:
                    print(f"{kind} {backend}: failed: {out.stderr.strip().splitlines()[-1]}")
                    break
                r = json.loads(out.stdout.strip().splitlines()[-1])
                res.setdefault((kind, backend), []).append(r)
                print(f"{kind:12s} {backend:5s}: compile {r['compile']:.1f} s, sampling {r['sampling']:.1f} s, "
                      f"divergences {r['divergences']}", flush=True)
    for (kind, backend), runs in res.items():
        comp = statistics.median(r["compile"] for r in runs)
        samp = statistics.median(r["sampling"] for r in runs)
        base = res.get(("potential", backend))
        ratio = ""
        if base and kind != "potential":
            ratio = (f"; vs potential: compile {comp / statistics.median(r['compile'] for r in base):.2f}x, "
                     f"sampling {samp / statistics.median(r['sampling'] for r in base):.2f}x")
        print(f"median {kind:12s} {backend:5s}: compile {comp:.1f} s, sampling {samp:.1f} s{ratio}")


if __name__ == "__main__":
    main()
