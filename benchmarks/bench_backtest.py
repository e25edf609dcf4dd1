"""Benchmark of the rolling-origin backtest: how long 6 windows take, and what was reused.

The demo, 6 cut-offs, horizon 3, conditional mode, the default model (``model: auto``,
default sampler settings), fit cache off, all in this process:

1. ``backend auto`` (what ``funnel backtest`` does): the windows sample with nutpie's
   Numba backend, and later windows reuse the graphs compiled for earlier ones;
2. baseline ``backend jax``: what the windows would cost fitted one by one the way a
   single ``funnel fit`` is (JAX, every window compiles its own graph);
3. baseline ``quick``: conjugate fits (no sampler).

Prints per window: fit, compile and sampling seconds, graphs sampled and reused, and the
sampler checks; then the wall times and their ratios. Usage::

    python benchmarks/bench_backtest.py [--windows 6] [--horizon 3] [--skip-jax] [--source demo]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import pandas as pd

from funnel_models.evaluation.backtest import backtest
from funnel_models.workflow import load_data

warnings.simplefilter("ignore")
pd.set_option("display.width", 200)


def run(label: str, data, **kw) -> float:
    """One backtest; prints its windows and returns the wall time."""
    t0 = time.perf_counter()
    res = backtest(data, progress=False, cache_dir=False, modes=("conditional",), **kw)
    wall = time.perf_counter() - t0
    w = res.windows
    cols = [c for c in ("cutoff", "fit_s", "compile_s", "sampling_s", "graphs", "reused", "ok", "r_hat_max",
                        "ess_bulk_min", "divergences") if c in w]
    print(f"\n== {label}: {wall:.1f} s wall, {len(w)} windows", flush=True)
    print(w[cols].round(3).to_string(index=False))
    m = res.metrics(mode="conditional")
    print(f"bayes MAE {m.loc['bayes', 'MAE']:.2f}, 80% coverage {m.loc['bayes', 'coverage_80']:.2f}", flush=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--source", default="demo", help="a load_data source (default: the demo)")
    ap.add_argument("--skip-jax", action="store_true", help="skip the JAX baseline")
    args = ap.parse_args()
    print(f"cores available: {os.cpu_count()}; source {args.source}")
    data = load_data(args.source)
    kw = dict(horizon=args.horizon, n_windows=args.windows)
    auto = run("MCMC, backend auto (Numba, compiled graphs reused)", data, **kw)
    jax = None if args.skip_jax else run("MCMC, backend jax (baseline)", data, sampler_config={"backend": "jax"},
                                          **kw)
    quick = run("quick conjugate (baseline)", data, model="conjugate", **kw)
    print("\n== summary")
    print(f"MCMC backtest, backend auto: {auto:.1f} s (issue goal: 30 s)")
    if jax is not None:
        print(f"backend jax: {jax:.1f} s -> auto is {jax / auto:.2f}x faster")
    print(f"quick conjugate: {quick:.1f} s -> MCMC (auto) takes {auto / quick:.1f}x the quick run")


if __name__ == "__main__":
    main()
