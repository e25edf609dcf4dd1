"""Sections of the backtest notebook: how good the win forecasts were, and which model made them.

:func:`run_backtest` runs :func:`funnel_models.evaluation.backtest.backtest` with the
parameter file's top level (data, model, factors, sampler) and its ``backtest`` section.
Forecasts are scored in two modes (the result's ``mode`` column): ``conditional`` on the
new leads that really arrived (isolates the conversion model) and ``unconditional``,
with the inflow forecast as a live forecast must (what a manager gets).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import plots
from .context import Context
from .render import Section, pct

__all__ = ["run_backtest", "scores_section", "calibration_section", "forecasts_section", "windows_section"]


def run_backtest(ctx: Context, *, progress: bool = False) -> Any:
    """Run the backtest of the context's parameters; the result is kept in ``ctx.results``."""
    from ..evaluation.backtest import backtest
    p, s = ctx.params, ctx.params.backtest
    settings = p.settings.model_copy(update={"factors": list(ctx.factors)})
    res = backtest(ctx.data, horizon=s.horizon, n_windows=s.n_windows, step=s.step, model=p.model,
                   model_config=settings.model_dump(), sampler_config=p.sampler_settings().model_dump(),
                   baselines=tuple(s.baselines), seed=p.seed, progress=progress, stages=s.stages,
                   min_train_months=s.min_train_months)
    ctx.results["backtest"] = res
    if s.output:
        res.to_csv(s.output)
    return res


def _model_names(res: Any) -> str:
    """Which models produced the Bayesian forecasts (one per distinct description over the windows)."""
    return "; ".join(pd.unique(res.windows["model"].astype(str)))


def scores_section(ctx: Context) -> Section:
    """MAE, MAPE, CRPS and interval coverage of the Bayesian model against the baselines, per mode."""
    res = ctx.results["backtest"]
    frames, lines = [], []
    for mode in res.modes:
        m = res.metrics(mode=mode).reset_index().assign(mode=mode)
        frames.append(m)
        bayes = m[m["model"] == "bayes"].iloc[0]
        base = m[m["model"] != "bayes"]
        best = base.loc[base["MAE"].idxmin()] if len(base) else None
        line = (f"{mode}: Bayesian MAE {bayes['MAE']:.1f} wins/month"
                + (f" vs best baseline {best['model']} {best['MAE']:.1f}" if best is not None else "")
                + f"; its 80% intervals cover {pct(bayes.get('coverage_80', np.nan))} of the months")
        lines.append(line)
    table = pd.concat(frames, ignore_index=True)
    cols = ["mode", "model"] + [c for c in table.columns if c not in ("mode", "model")]
    table = table[cols].round(3)
    cut = res.frame["cutoff"]
    text = (f"{cut.nunique()} monthly cut-offs ({pd.Timestamp(cut.min()):%Y-%m} to {pd.Timestamp(cut.max()):%Y-%m}), "
            f"{res.horizon} months ahead each. " + "; ".join(lines) + ". Conditional forecasts are given the new "
            "leads that really arrived; unconditional ones forecast them too, as a live forecast must.")
    ctx.summary["backtest"] = {"cutoffs": int(cut.nunique()), "horizon": int(res.horizon),
                               "metrics": table.to_dict("records"), "headline": "Backtest: " + "; ".join(lines) + "."}
    return Section("Scores per model", text, None, table, note=f"Bayesian forecasts from: {_model_names(res)}.")


def calibration_section(ctx: Context) -> Section:
    """Nominal vs empirical coverage of the Bayesian intervals."""
    res = ctx.results["backtest"]
    held = [f"{mode.capitalize()} forecasts: {res.coverage_sentence(mode=mode)}." for mode in res.modes]
    ctx.summary.setdefault("backtest", {})["coverage"] = {
        mode: res.coverage(mode=mode).to_dict("records") for mode in res.modes}
    text = ("The dots should lie on the diagonal: an 80% interval should hold the actual wins in 80% of the "
            "months. With a few cut-offs the share moves a lot by chance; the bands show how far it moves for "
            "intervals that are right. " + " ".join(held))
    return Section("Calibration", text, plots.calibration_chart(res), None)


def forecasts_section(ctx: Context) -> Section:
    """Actual wins against every model's forecasts, one panel per month ahead."""
    res = ctx.results["backtest"]
    mode = "unconditional" if "unconditional" in res.modes else res.modes[0]
    return Section("Forecasts against actual wins", f"Each panel shows the forecasts made h months before the "
                   f"month ({mode} forecasts, as a manager would have had them), with the Bayesian intervals.",
                   plots.backtest_forecasts_chart(res, mode), None)


def windows_section(ctx: Context) -> Section:
    """Per cut-off: data, timings, and which model fitted it (variant, convergence)."""
    res = ctx.results["backtest"]
    w = res.windows.drop(columns=[c for c in ("signature",) if c in res.windows])
    bad = w[~w["ok"].astype(bool)] if "ok" in w else w.iloc[0:0]
    text = (f"{len(w)} fits. " + ("All converged." if bad.empty else
                                  f"{len(bad)} fit(s) did not converge: their forecasts are less trustworthy."))
    return Section("Fits per cut-off", text, None, w.round(3), warning="" if bad.empty else text)
