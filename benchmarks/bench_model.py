"""Benchmark: fitting the Markov funnel model on the demo, per backend and model variant.

Every fit runs in a fresh process, so compile time is real:

- cold: empty compile caches (PyTensor compiledir, Numba cache, JAX cache);
- warm: a second process with those caches kept (the fit cache itself is off).

Cases (the demo: 36 months, 6 stages, region x channel = 12 cells, one change point):

``memoryless``
    time in stage and month effects off: the first release's model.
``default``
    the default settings: time in stage and month effects chosen by leave-one-out
    accuracy (three first-stage/second-stage fits and the comparison).

each with nutpie's ``jax`` and ``numba`` backends. Baseline, named
``straightforward``: the same memoryless model written the straightforward way, one
``pm.Multinomial`` per funnel row over its observations, sampled with PyMC's default NUTS
(C backend), on the same data, in the same run.

Prints compile and sampling split, wall time, peak RSS and diagnostics per run, medians per
case, and the ratios against the baseline. Usage::

    python benchmarks/bench_model.py [--runs 2] [--backends jax numba] [--cases [memoryless default]]
                                     [--skip-baseline]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.models import FunnelModel
case, backend = sys.argv[1], sys.argv[2]
d = demo_data()
snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
cfg = {"factors": ["region", "channel"], "change_points": [{"stage": "DEMO", "month": "2025-01"}]}
if case == "memoryless":
    cfg.update(time_in_stage="off", month_effects="off")
t1 = time.perf_counter()
m = FunnelModel(d.spec, cfg, {"progress": False, "backend": backend}, cache_dir=False).fit(snaps)
t2 = time.perf_counter()
diag = m.diagnostics(warn=False)
print(json.dumps({"fit_wall": t2 - t1, "process_wall": t2 - t0, "compile": m.timings.get("compile", 0.0),
                  "sampling": m.timings.get("sampling", 0.0), "variant": m.variant.label,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "r_hat_max": diag.r_hat_max, "ess_bulk_min": diag.ess_bulk_min,
                  "divergences": diag.divergences}))
"""


def run_child(case: str, backend: str, caches: str) -> dict:
    """One fit in a fresh process with compile caches under ``caches``."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={caches}/pytensor", NUMBA_CACHE_DIR=f"{caches}/numba",
               JAX_COMPILATION_CACHE_DIR=f"{caches}/jax", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = subprocess.run([sys.executable, "-c", CHILD, case, backend], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_baseline() -> dict:
    """The memoryless model with one pm.Multinomial per row, PyMC's default sampler."""
    import arviz as az
    import numpy as np
    import pymc as pm

    from funnel_models.data import derive
    from funnel_models.datasets.demo import demo_data
    from funnel_models.models.structure import ChangePoint, build_design

    warnings.simplefilter("ignore")
    d = demo_data()
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    tr = derive.transitions(snaps, d.spec, by=["region", "channel"])
    des = build_design(tr, d.spec, factors=["region", "channel"],
                       change_points=[ChangePoint("DEMO", __import__("pandas").Timestamp("2025-01-01"))])
    t0 = time.perf_counter()
    with pm.Model():
        effects = {f: pm.HalfNormal(f"sigma_{f}", 0.5) for f in des.factors}
        for i, r in enumerate(des.rows):
            obs = des.row == i
            k = len(r.dest)
            a = pm.Normal(f"a_{i}", 0, 2, shape=k - 1)
            eta = pm.math.concatenate([np.zeros((int(obs.sum()), 1)), a[None, :].repeat(int(obs.sum()), 0)], axis=1)
            for f, lv in des.factors.items():
                e = pm.Normal(f"e_{i}_{f}", 0, 1, shape=(len(lv), k - 1)) * effects[f]
                eta = eta + pm.math.concatenate([np.zeros((int(obs.sum()), 1)), e[des.levels[f][obs]]], axis=1)
            if des.change_points and r.source == "DEMO":
                delta = pm.Normal(f"c_{i}", 0, 1, shape=k - 1)
                eta = eta + pm.math.concatenate([np.zeros((int(obs.sum()), 1)),
                                                 des.active[obs, :1] * delta[None, :]], axis=1)
            pm.Multinomial(f"y_{i}", n=des.counts[obs].sum(1), p=pm.math.softmax(eta, axis=1),
                           observed=des.counts[obs][:, :k])
        idata = pm.sample(draws=1000, tune=500, chains=4, cores=2, random_seed=1, progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    sampling = float(idata.sample_stats.attrs.get("sampling_time", float("nan")))
    return {"wall": wall, "sampling": sampling, "compile": wall - sampling,
            "r_hat_max": max(float(v.max()) for v in az.rhat(idata).data_vars.values()),
            "ess_bulk_min": min(float(v.min()) for v in az.ess(idata, method="bulk").data_vars.values()),
            "divergences": int(idata.sample_stats["diverging"].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="fits per case in fresh processes (the first is cold)")
    ap.add_argument("--backends", nargs="+", default=["jax", "numba"])
    ap.add_argument("--cases", nargs="*", default=["memoryless", "default"], help="none: the baseline alone")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    summary = {}
    for case in args.cases:
        for backend in args.backends:
            caches = tempfile.mkdtemp(prefix=f"bench-{backend}-")
            runs = []
            for i in range(args.runs):
                r = run_child(case, backend, caches)
                runs.append(r)
                print(f"{case:10s} {backend:5s} run {i + 1} ({'cold' if i == 0 else 'warm'}): fit {r['fit_wall']:.1f} s "
                      f"= compile {r['compile']:.1f} s + sampling {r['sampling']:.1f} s + rest; process "
                      f"{r['process_wall']:.1f} s; {r['variant']}; r_hat {r['r_hat_max']:.3f}, bulk ESS "
                      f"{r['ess_bulk_min']:.0f}, divergences {r['divergences']}; peak RSS {r['peak_rss_mb']:.0f} MB",
                      flush=True)
            warm = [r["fit_wall"] for r in runs[1:]] or [runs[0]["fit_wall"]]
            summary[(case, backend)] = (runs[0]["fit_wall"], statistics.median(warm))
            print(f"{case:10s} {backend:5s}: cold {runs[0]['fit_wall']:.1f} s, warm median {summary[(case, backend)][1]:.1f} s")
    if not args.skip_baseline:
        b = run_baseline()
        print(f"baseline straightforward (per-row pm.Multinomial, PyMC NUTS): {b['wall']:.1f} s = compile and "
              f"set-up {b['compile']:.1f} s + sampling {b['sampling']:.1f} s; r_hat {b['r_hat_max']:.3f}, bulk ESS "
              f"{b['ess_bulk_min']:.0f}, divergences {b['divergences']}")
        for (case, backend), (cold, warm) in summary.items():
            print(f"ratio baseline / {case} {backend}: cold {b['wall'] / cold:.1f}x, warm {b['wall'] / warm:.1f}x")


if __name__ == "__main__":
    main()
