"""``funnel backtest``: rolling-origin backtest of the forecast against baselines."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ParameterError

__all__ = ["register", "handler", "load_params", "PARAM_KEYS"]

#: Keys a PARAMS.yaml may hold (all optional).
PARAM_KEYS = {"source", "spec", "mapping", "filters", "start", "end", "horizon", "n_windows", "step", "quick",
              "model_config", "sampler_config", "baselines", "seed", "stages", "output"}

_EXAMPLE = """\
examples:
  funnel backtest --quick                       # the demo, 6 windows, horizon 3
  funnel backtest params.yaml --windows 12 --output cv.csv

PARAMS.yaml (every key optional):
  source: demo            # demo | olist | history.csv | store.duckdb
  spec: funnel.yaml       # needed for files
  horizon: 3
  n_windows: 6
  step: 1
  quick: false            # true: exact conjugate model instead of MCMC
  model_config: {factors: [region]}
  baselines: [trailing3, last_month, weighted_pipeline]
  output: backtest.csv

Forecasts condition on the realised number of new leads in each forecast month.
"""


def load_params(path: str | None) -> dict[str, Any]:
    """Read a PARAMS.yaml (or nothing) into a dict; unknown keys are an error."""
    if not path:
        return {}
    import yaml
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{path}: parameters file not found")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of parameters, got {type(data).__name__}")
    bad = sorted(set(data) - PARAM_KEYS)
    if bad:
        raise ParameterError(f"{path}: unknown parameter(s) {bad}; allowed: {sorted(PARAM_KEYS)}")
    return data


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel backtest``; returns the exit status."""
    import pandas as pd

    from ..evaluation.backtest import BASELINES, backtest
    from ..workflow import load_data
    p = load_params(args.params)
    for key, val in (("horizon", args.horizon), ("n_windows", args.windows), ("output", args.output)):
        if val is not None:
            p[key] = val
    if args.quick:
        p["quick"] = True
    data = load_data(p.get("source", "demo"), spec=p.get("spec"), mapping=p.get("mapping"),
                     filters=p.get("filters"), start=p.get("start"), end=p.get("end"))
    res = backtest(data, horizon=int(p.get("horizon", 3)), n_windows=int(p.get("n_windows", 6)),
                   step=int(p.get("step", 1)), model_config=p.get("model_config"),
                   baselines=tuple(p.get("baselines", BASELINES)), quick=bool(p.get("quick", False)),
                   sampler_config=p.get("sampler_config"), seed=int(p.get("seed", 0)),
                   stages=p.get("stages", False), progress=not args.no_progress)
    cuts = res.frame["cutoff"]
    print(f"backtest of {data.source}: {cuts.nunique()} cut-offs {cuts.min():%Y-%m-%d} .. {cuts.max():%Y-%m-%d}, "
          f"horizon {res.horizon} months, {'quick conjugate' if res.config['quick'] else 'MCMC'} model; "
          "forecasts use the realised new leads of each month")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(res.metrics().round(3).to_string())
    if p.get("output"):
        out = res.to_csv(p["output"])
        print(f"wrote {out}")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``backtest`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "backtest", help="rolling-origin backtest of the win forecast vs baselines",
        description="Fit at monthly cut-offs, forecast the next months' wins from the open pipeline and "
        "the realised new leads, and score the Bayesian model (MAE, MAPE, CRPS, interval coverage) "
        "against trailing-rate and weighted-pipeline baselines.",
        epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("params", nargs="?", metavar="PARAMS.yaml", help="parameters file (see below)")
    p.add_argument("--horizon", type=int, help="months forecast after each cut-off (default 3)")
    p.add_argument("--windows", type=int, help="number of monthly cut-offs (default 6)")
    p.add_argument("--quick", action="store_true", help="exact conjugate model instead of MCMC")
    p.add_argument("--output", metavar="CSV", help="write the long forecast/actual table here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)
    return p
