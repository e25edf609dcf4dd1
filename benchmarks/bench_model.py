"""Benchmark: fitting the FunnelModel on the demo data vs a straightforward PyMC baseline.

Ours: the full demo model (36 months, 6 stages, region x channel = 12 cells, one change
point), nutpie. Each fit runs in a fresh process so compile time is real:

- run 1 with an empty PyTensor compile dir (cold: Numba compilation included);
- runs 2..N with that compile dir kept (warm disk cache).

Baseline, named "pymc-binomial-grw": a binomial model per stage transition with a
*centered* GaussianRandomWalk over months per segment, PyMC's default NUTS sampler
(6 segments x 4 transitions x 24 months, as in DESIGN.md). Run once in the same session.

Prints compile, sampling, wall time, peak RSS and diagnostics, and the ratio
baseline / ours (warm median).

Usage: python benchmarks/bench_model.py [--runs 3] [--skip-baseline]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

CHILD = r"""
import json, resource, tempfile, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.models import FunnelModel
d = demo_data()
snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
cfg = {"factors": ["region", "channel"], "change_points": [{"stage": "DEMO", "month": "2025-01"}]}
t1 = time.perf_counter()
cache = tempfile.mkdtemp()
m = FunnelModel(d.spec, cfg, {"progress": False}, cache_dir=cache).fit(snaps)
t2 = time.perf_counter()
timings = dict(m.timings)
t3 = time.perf_counter()
again = FunnelModel(d.spec, cfg, {"progress": False}, cache_dir=cache).fit(snaps)
cache_total = time.perf_counter() - t3
diag = m.diagnostics(warn=False)
print(json.dumps({"fit_wall": t2 - t1, "process_wall": t2 - t0, **timings,
                  "cached_fit": cache_total, "cache_load": again.timings["cache_load"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "r_hat_max": diag["r_hat_max"], "ess_bulk_min": diag["ess_bulk_min"],
                  "divergences": diag["divergences"], "parameterization": m.parameterization}))
"""


def run_ours(compiledir: str) -> dict:
    env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={compiledir}")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_baseline() -> dict:
    import numpy as np
    import pymc as pm

    from funnel_models.data import derive
    from funnel_models.datasets.demo import demo_data

    warnings.simplefilter("ignore")
    d = demo_data(months=24)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    tr = derive.transitions(snaps, d.spec, by=["region", "channel"])
    tr = tr[tr["region"].isin(["North", "South"])]
    tr["seg"] = tr["region"] + "/" + tr["channel"]
    segs = sorted(tr["seg"].unique())
    months = sorted(tr["month"].unique())
    moves = [("LEAD", "MQL"), ("MQL", "SQL"), ("SQL", "DEMO"), ("DEMO", "PROP")]
    n = np.zeros((len(segs), len(moves), len(months)), dtype=int)
    y = np.zeros_like(n)
    g = tr.groupby(["seg", "from_stage", "month"])["n"].sum()
    gy = tr.groupby(["seg", "from_stage", "to_stage", "month"])["n"].sum()
    for i, s in enumerate(segs):
        for j, (src, dst) in enumerate(moves):
            for t, mo in enumerate(months):
                n[i, j, t] = g.get((s, src, mo), 0)
                y[i, j, t] = gy.get((s, src, dst, mo), 0)
    t0 = time.perf_counter()
    with pm.Model():
        mu = pm.Normal("mu", 0, 1.5, shape=(len(segs), len(moves), 1))
        sigma = pm.HalfNormal("sigma", 0.2, shape=(len(segs), len(moves)))
        walk = pm.GaussianRandomWalk("walk", sigma=sigma, init_dist=pm.Normal.dist(0, 0.01),
                                     shape=(len(segs), len(moves), len(months)))
        pm.Binomial("y", n=n, p=pm.math.sigmoid(mu + walk), observed=y)
        idata = pm.sample(chains=2, cores=2, random_seed=1, progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    import arviz as az
    rhat = float(az.rhat(idata).to_array().max())
    div = int(idata.sample_stats["diverging"].sum())
    return {"wall": wall, "r_hat_max": rhat, "divergences": div}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fits in fresh processes (first is cold)")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    compiledir = tempfile.mkdtemp(prefix="bench-pytensor-")
    results = []
    for i in range(args.runs):
        r = run_ours(compiledir)
        results.append(r)
        kind = "cold" if i == 0 else "warm"
        print(f"ours run {i + 1} ({kind}): fit {r['fit_wall']:.1f} s = compile {r['compile']:.1f} s + "
              f"sampling {r['sampling']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} MB; r_hat {r['r_hat_max']:.3f}, "
              f"bulk ESS {r['ess_bulk_min']:.0f}, divergences {r['divergences']}; {r['parameterization']}; "
              f"identical second fit from the cache {r['cached_fit']:.2f} s (load {r['cache_load']:.2f} s)")
    warm = [r["fit_wall"] for r in results[1:]] or [results[0]["fit_wall"]]
    warm_med = statistics.median(warm)
    print(f"ours: cold fit {results[0]['fit_wall']:.1f} s, warm median {warm_med:.1f} s "
          f"(sampling median {statistics.median(r['sampling'] for r in results):.1f} s)")
    if not args.skip_baseline:
        b = run_baseline()
        print(f"baseline pymc-binomial-grw: {b['wall']:.1f} s, r_hat {b['r_hat_max']:.3f}, "
              f"divergences {b['divergences']}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        print(f"ratio baseline / ours (warm median): {b['wall'] / warm_med:.1f}x; "
              f"baseline / ours (cold): {b['wall'] / results[0]['fit_wall']:.1f}x")


if __name__ == "__main__":
    main()
