"""Benchmark and scorecard of the rolling-origin backtest.

1. Demo, MCMC (nutpie, default sampler config, fit cache off): wall time of a 6-window,
   horizon-3 backtest that reuses the compiled model (target < 3 minutes on 2 cores),
   per-window compile vs sampling seconds, against two baselines run in this process:
   (a) the same MCMC backtest with a fresh compile per window (the compiled-model cache
   emptied before every fit), (b) the same backtest with quick=True conjugate fits.
2. Olist (``load_data("olist")``, read in place; skipped if absent): monthly cut-offs over
   its last 6 usable months (horizon 3), quick and MCMC models, coverage and MAE against
   the baselines.

Usage::

    python benchmarks/bench_backtest.py            # everything
    python benchmarks/bench_backtest.py --skip-fresh --skip-olist-mcmc
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import pandas as pd

from funnel_models.evaluation.backtest import backtest
from funnel_models.models import FunnelModel
from funnel_models.models import markov as fm
from funnel_models.workflow import OLIST_DIR, load_data

warnings.simplefilter("ignore")
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)


def _run(label: str, data, **kw):
    t0 = time.perf_counter()
    res = backtest(data, progress=False, cache_dir=False, **kw)
    wall = time.perf_counter() - t0
    w = res.windows
    print(f"\n== {label}: {wall:.1f} s wall, {len(w)} windows")
    cols = [c for c in ("cutoff", "fit_s", "compile_s", "sampling_s", "forecast_s", "compiled_new") if c in w]
    print(w[cols].round(2).to_string(index=False))
    print(res.metrics().round(3).to_string())
    return res, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--skip-fresh", action="store_true", help="skip the fresh-compile-per-window baseline")
    ap.add_argument("--skip-olist-mcmc", action="store_true")
    args = ap.parse_args()
    print(f"cores available: {os.cpu_count()}")
    demo = load_data("demo")
    kw = dict(horizon=args.horizon, n_windows=args.windows)

    fm._COMPILED.clear()
    _, t_reuse = _run("demo MCMC, compiled model reused", demo, quick=False, **kw)

    t_fresh = None
    if not args.skip_fresh:
        orig_fit = FunnelModel.fit

        def fresh_fit(self, *a, **k):  # named baseline: recompile every window
            fm._COMPILED.clear()
            return orig_fit(self, *a, **k)
        FunnelModel.fit = fresh_fit
        try:
            _, t_fresh = _run("demo MCMC, fresh compile per window (baseline)", demo, quick=False, **kw)
        finally:
            FunnelModel.fit = orig_fit

    _, t_quick = _run("demo quick conjugate (baseline)", demo, quick=True, **kw)
    print("\n== demo timing summary")
    print(f"MCMC backtest, reused compile: {t_reuse:.1f} s (target < 180 s on 2 cores): "
          f"{'OK' if t_reuse < 180 else 'MISSED'}")
    if t_fresh is not None:
        print(f"fresh compile per window: {t_fresh:.1f} s -> reuse is {t_fresh / t_reuse:.1f}x faster")
    print(f"quick conjugate: {t_quick:.1f} s -> MCMC (reused) takes {t_reuse / t_quick:.1f}x the quick run")

    if not OLIST_DIR.exists():
        print(f"\nOlist data not found at {OLIST_DIR}: skipped")
        return
    olist = load_data("olist")
    for quick in ([True] if args.skip_olist_mcmc else [True, False]):
        name = "quick conjugate" if quick else "MCMC"
        res, _ = _run(f"Olist {name}, last 6 cut-offs", olist, quick=quick, horizon=3, n_windows=6)
        m = res.metrics()
        print(f"Olist {name}: bayes MAE {m.loc['bayes', 'MAE']:.1f} vs "
              + ", ".join(f"{b} {m.loc[b, 'MAE']:.1f}" for b in res.models[1:])
              + f"; 50/80/95% coverage {m.loc['bayes', 'coverage_50']:.0%}/{m.loc['bayes', 'coverage_80']:.0%}/"
              f"{m.loc['bayes', 'coverage_95']:.0%} over {int(m.loc['bayes', 'n'])} months")
        print(res.frame[["cutoff", "month", "actual", "new_leads", "bayes", "bayes-lo-80", "bayes-hi-80",
                         *res.models[1:]]].round(1).to_string(index=False))


if __name__ == "__main__":
    main()
