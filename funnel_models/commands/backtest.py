"""``funnel backtest [PARAMS.yaml]``: rolling-origin backtest of the win forecast against baselines.

Takes the same parameter file as every other command (its ``backtest:`` section holds
the backtest's own settings) and checks it before anything runs.
"""
from __future__ import annotations

import argparse
from typing import Any

from . import Command, add_parameter_file_argument, add_quick_option, add_wait_option, quick_overrides

__all__ = ["COMMAND", "handler", "add_arguments"]

_EXAMPLE = """\
examples:
  funnel backtest --quick                       # the demo (default.yaml), conjugate model
  funnel backtest params.yaml --windows 12 --output cv.csv
  funnel backtest parameters/olist.yaml --cutoff 2018-10-31   # the report is as of May 2018; deals go on

The parameter file is the one of funnel fit and funnel report (README, 'Parameter files');
its backtest section:
  backtest:
    horizon: 3            # months forecast after each cut-off
    n_windows: 6          # monthly cut-offs
    step: 1
    baselines: [trailing3, last_month, weighted_pipeline]
    stages: false         # also backtest entries into open stages (true: all)
    output: backtest.csv  # the long forecast/actual table

Forecasts are scored conditional on the new leads that really arrived and unconditional
(with the inflow forecast), as a live forecast must.

exit status: 0 ok; 2 bad input; 3 the data store is busy (retry, or --wait SECONDS).
"""


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel backtest``; returns the exit status."""
    import pandas as pd

    from ..preflight import preflight
    from ..reports.backtest_report import run_backtest
    from ..reports.context import prepare
    from ..reports.notebooks import load_parameters
    section = {k: v for k, v in (("horizon", args.horizon), ("n_windows", args.windows), ("output", args.output))
               if v is not None}
    overrides: dict[str, Any] = {"backtest": section} if section else {}
    overrides.update(quick_overrides(args))
    if args.cutoff is not None:
        overrides["cutoff"] = args.cutoff
    path, params, _ = load_parameters(args.params or None, overrides or None)
    preflight(params, "backtest", where=str(path), wait=args.wait)
    ctx = prepare("backtest", params)
    res = run_backtest(ctx, progress=not args.no_progress)
    cuts = res.frame["cutoff"]
    print(f"backtest of {ctx.data.source}: {cuts.nunique()} cut-offs {cuts.min():%Y-%m-%d} .. {cuts.max():%Y-%m-%d}, "
          f"horizon {res.horizon} months, model: {params.model}")
    print("Bayesian forecasts from: " + "; ".join(pd.unique(res.windows["model"].astype(str))))
    _print_checks(res.windows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for mode in res.modes:
            print(f"{mode} forecasts" + (" (given the new leads that really arrived):" if mode == "conditional"
                                         else " (new leads forecast by the inflow model too):"))
            print(res.metrics(mode=mode).round(3).to_string())
            print(res.coverage_sentence(mode=mode))
    if params.backtest.output:
        print(f"wrote {params.backtest.output}")
    return 0


def _print_checks(windows: Any) -> None:
    """How many windows' fits passed the sampler checks, and which did not (with why)."""
    import pandas as pd
    if "ok" not in windows or windows["r_hat_max"].isna().all():
        return                                        # no sampler (quick mode)
    bad = windows[~windows["ok"].astype(bool)]
    print(f"sampler checks (r_hat <= 1.01, bulk ESS >= 400, no divergences): {len(windows) - len(bad)} of "
          f"{len(windows)} window fits passed" + (":" if len(bad) else ""))
    for _, w in bad.iterrows():
        print(f"  cut-off {pd.Timestamp(w['cutoff']):%Y-%m-%d}: r_hat {w['r_hat_max']:.3f}, bulk ESS "
              f"{w['ess_bulk_min']:.0f}, {int(w['divergences'])} divergences; its forecasts are in the scores above")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``backtest`` arguments to its parser."""
    add_parameter_file_argument(p)
    p.add_argument("--horizon", type=int, help="months forecast after each cut-off (backtest.horizon)")
    p.add_argument("--windows", type=int, help="number of monthly cut-offs (backtest.n_windows)")
    p.add_argument("--cutoff", metavar="YYYY-MM-DD",
                   help="last day of the data to use (overrides the file's cutoff; the last window's "
                        "actuals end here)")
    add_quick_option(p)
    p.add_argument("--output", metavar="CSV", help="write the long forecast/actual table here (backtest.output)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_wait_option(p)


COMMAND = Command(
    "backtest", help="rolling-origin backtest of the win forecast vs baselines",
    description="Fit at monthly cut-offs, forecast the next months' wins from the open pipeline and "
    "the new leads, and score the Bayesian model (MAE, MAPE, CRPS, interval coverage) against "
    "trailing-rate and weighted-pipeline baselines.",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler, silence_library_warnings=True)
