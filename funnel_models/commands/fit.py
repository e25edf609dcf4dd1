"""``funnel fit PARAMS.yaml``: fit (or load from the cache) the model of a parameter file.

Useful before a scheduled report (the report then loads the cached fit) and to check the
model: prints which model and variant produced the numbers (with the ELPD comparison that
chose it), the per-stage summary, where leads are heading (win rate of a new lead,
eventual win rate of today's open pipeline, the share gone cold, time to win), how much
whole months differ (with month effects) and the diagnostics. Exit status 0 when the
diagnostics are fine, 1 when they are not, 2 on bad input, 3 when the data store is busy.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from . import Command, add_parameter_file_argument, add_quick_option, add_wait_option, quick_overrides

__all__ = ["COMMAND", "handler", "add_arguments"]


def _print_choice(ctx: Any) -> None:
    from ..models.selection import RULE
    print(f"model: {ctx.model_label}")
    sel = getattr(ctx.model, "selection", None)
    if sel is not None and len(sel):
        print(f"chosen by leave-one-out accuracy: {RULE}")
        cols = [c for c in ("stage", "variant", "elpd", "elpd_diff", "dse", "p_loo", "pareto_k_bad") if c in sel]
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(sel[cols].rename(columns={"stage": "comparison"}).round(1).to_string(index=False))


def _print_outlook(ctx: Any) -> None:
    from ..charts.headline import months_to_win_text
    from ..simulate import pipeline_outlook
    post, lv = ctx.post, ctx.level
    w = post.lead_win_rate()
    lo, hi = np.quantile(w, [(1 - lv) / 2, (1 + lv) / 2])
    won, lost, cold = post.lead_outcomes().mean(0)
    print(f"a new lead is eventually won with probability {w.mean():.1%} ({lv:.0%}: {lo:.1%}-{hi:.1%}); lost "
          f"{lost:.0%}" + (f", goes cold {cold:.0%}" if post.cold_after is not None else "")
          + f"; a won lead is typically won {months_to_win_text(post.typical_months_to_win())} (median)")
    out = pipeline_outlook(post, ctx.pipeline, months=6, start=ctx.cutoff_month, level=lv).iloc[-1]
    cold_txt = (f"{out['cold_share']:.0%} effectively cold" if np.isfinite(out["cold_share"])
                else "cold leads not told apart (memoryless model)")
    rate = f"{out['win_rate_mean']:.1%}" if np.isfinite(out["win_rate_mean"]) else "n/a"
    shots = (f", {out['unlikely_share']:.0%} with under a tenth of a new lead's chance"
             if np.isfinite(out["unlikely_share"]) else "")
    print(f"open pipeline: {int(out['open']):,} leads, {cold_txt}{shots}, eventual win rate {rate}")


def _print_months(post: Any) -> None:
    """How much whole months differ, from the fitted month-shock scales (posterior medians)."""
    if not post.has_shocks:
        return
    pct = lambda sd: f"{np.expm1(sd):.0%}"  # noqa: E731  a shock of one standard deviation on the odds
    parts = []
    if post.common_sd is not None:
        parts.append(f"every stage's odds together by about +/-{pct(np.median(post.common_sd))}")
    if post.shock_sd is not None:
        own = np.median(post.shock_sd, axis=0)
        own = own[own > 0]
        if own.size:
            lo, hi = pct(own.min()), pct(own.max())
            parts.append(f"each stage's by a further +/-{lo}" + (f" to {hi}" if hi != lo else ""))
    print("months differ: a typical month moves " + ", and ".join(parts))


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel fit``; returns the exit status."""
    from ..preflight import preflight
    from ..reports.context import prepare
    from ..reports.notebooks import load_parameters
    path, params, nb_key = load_parameters(args.params or None, quick_overrides(args) or None)
    notebook = args.notebook or nb_key or "monthly_report"
    preflight(params, notebook, where=str(path), wait=args.wait)
    t0 = time.perf_counter()
    ctx = prepare(notebook, params, progress=args.progress, cache_dir=args.cache_dir, inflow=False)
    secs = time.perf_counter() - t0
    d = ctx.summary["data"]
    amount = f"{d['leads']:,} leads" if ctx.data.has_leads else "aggregate counts"
    print(f"{path}: {d['source']} up to {d['cutoff']}, {amount}, factors {ctx.factors or '-'}")
    for n in ctx.notes:
        print(f"  note: {ctx.clean_note(n)}")
    _print_choice(ctx)
    table = ctx.post.stage_table(ctx.level)
    cols = ["stage", "conversion_mean", "conversion_lo", "conversion_hi", "expected_stall_mean"]
    print(table[cols].round(3).to_string(index=False))
    _print_outlook(ctx)
    _print_months(ctx.post)
    info = ctx.model.fit_info()
    how = "loaded from the cache" if "cache_load" in info else "fitted"
    print(f"{ctx.model.name} model {how} in {secs:.1f} s")
    diag = ctx.model.diagnostics(warn=False)
    if diag.method == "mcmc":
        print(f"r_hat max {diag.r_hat_max:.3f}, bulk ESS min {diag.ess_bulk_min:.0f}, tail ESS min "
              f"{diag.ess_tail_min:.0f}, divergences {diag.divergences}")
    print(diag.message, file=sys.stdout if diag.ok else sys.stderr)
    return 0 if diag.ok else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``fit`` arguments to its parser."""
    add_parameter_file_argument(p)
    p.add_argument("--notebook", default=None, metavar="NAME",
                   help="check the file for this notebook too (e.g. process_change adds its change point)")
    add_quick_option(p)
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="fit cache folder")
    p.add_argument("--progress", action="store_true", help="show the sampler's progress bar")
    add_wait_option(p)


COMMAND = Command(
    "fit", help="fit and cache the model of a parameter file, print the model and its diagnostics",
    description="Load the data of PARAMS.yaml (default: default.yaml), fit the model (cached on disk "
    "by a hash of data and settings: $FUNNEL_CACHE_DIR or ~/.cache/funnel_models), and print which "
    "model and variant was chosen (ELPD differences), per-stage conversion, where leads are heading "
    "and the diagnostics.",
    epilog="example:\n  funnel fit parameters/region_north.yaml\n\nexit status: 0 ok; 1 the diagnostics "
    "are bad; 2 bad input; 3 the data store is busy (retry, or --wait SECONDS).",
    add_arguments=add_arguments, run=handler, silence_library_warnings=True)
