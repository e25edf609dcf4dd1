"""``funnel fit PARAMS.yaml``: fit (or load from the cache) the model of a parameter file.

Useful before a scheduled report (the report then loads the cached fit in a second) and
to check convergence: prints the diagnostics and the per-stage summary. Exit status 0 when
the diagnostics are fine, 1 when they are not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

from ..errors import FunnelWarning

__all__ = ["register", "handler"]


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel fit``; returns the exit status."""
    from ..reports.analysis import prepare
    from ..reports.params import load_parameters
    from ..reports.runner import resolve_parameters
    path = resolve_parameters(args.parameters) if args.parameters else resolve_parameters("default.yaml")
    overrides = {"quick": True} if args.quick else None
    name, params, _ = load_parameters(path, args.notebook, overrides)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("default", FunnelWarning)
        ctx = prepare(name, params.model_dump(), progress=args.progress, cache_dir=args.cache_dir)
    secs = time.perf_counter() - t0
    d = ctx.summary["data"]
    print(f"{path}: {d['source']} up to {d['cutoff']}, {d['leads']:,} leads, factors {ctx.factors or '-'}")
    for n in ctx.notes:
        print(f"  note: {n}")
    table = ctx.post.stage_table(params.interval_level)
    cols = ["stage", "conversion_mean", "conversion_lo", "conversion_hi", "expected_stall_mean"]
    print(table[cols].round(3).to_string(index=False))
    if ctx.quick:
        print(f"quick mode (conjugate, exact): {secs:.1f} s")
        return 0
    timing = ctx.model.timings
    how = "loaded from cache" if "cache_load" in timing else "fitted and cached"
    print(f"MCMC model {how} in {secs:.1f} s (cache: {ctx.model.cache_dir}, key {ctx.model.fit_hash()})")
    diag = ctx.model.diagnostics(warn=False)
    print(f"r_hat max {diag['r_hat_max']:.3f}, bulk ESS min {diag['ess_bulk_min']:.0f}, "
          f"tail ESS min {diag['ess_tail_min']:.0f}, divergences {diag['divergences']}")
    print(diag["message"], file=sys.stdout if diag["ok"] else sys.stderr)
    return 0 if diag["ok"] else 1


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``fit`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "fit", help="fit and cache the model of a parameter file, print diagnostics",
        description="Load the data of PARAMS.yaml (default: default.yaml), fit the model (cached on disk "
        "by a hash of data and config: $FUNNEL_CACHE_DIR or ~/.cache/funnel_models) and print the "
        "diagnostics and per-stage conversion. Exit 1 when the diagnostics are bad.",
        epilog="example:\n  funnel fit parameters/region_north.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parameters", nargs="?", metavar="PARAMS.yaml", help="parameter file (default default.yaml)")
    p.add_argument("--notebook", default=None, metavar="NAME", help="notebook whose schema the file uses")
    p.add_argument("--quick", action="store_true", help="quick mode (conjugate model, no MCMC)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="fit cache folder")
    p.add_argument("--progress", action="store_true", help="show the sampler's progress bar")
    p.set_defaults(func=handler)
    return p
