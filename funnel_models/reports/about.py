"""Sections that say where the numbers come from: header, model choice, diagnostics.

Every report says which model produced its numbers (the model's ``description`` and the
variant it chose), how the variant was chosen (the ELPD comparison and the rule of
:mod:`funnel_models.models.selection`), what the fit did on its own (its diagnostics
notes, e.g. a refit in the other parameterization or "outcomes recorded only from
2017-12"), which stages have no data, and whether the sampler converged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..params import from_notebook
from .context import Context, notebook_values, prepare
from .render import Section, month_label, show

__all__ = ["open_report", "header_section", "diagnostics_banner", "model_section", "diagnostics_section",
           "unobserved_stages"]


def unobserved_stages(ctx: Context) -> list[str]:
    """Open stages the data never shows (their rates are not estimated)."""
    return list((ctx.post.meta or {}).get("unobserved_rows", [])) if ctx.post is not None else []


def _data_sentence(ctx: Context) -> str:
    p, d = ctx.params, ctx.data
    filt = ", ".join(f"{k}={v}" for k, v in p.segment_filters.items()) or "all segments"
    amount = f"{d.n_leads():,} leads" if d.has_leads else "aggregate monthly counts"
    return (f"Data: {Path(str(d.source)).name}, {amount}, {filt}, observed up to {d.cutoff.date()} "
            f"(report month {month_label(ctx.cutoff_month)}).")


def header_section(ctx: Context) -> Section:
    """Title, data, model, where new leads come from, and the notes about data and fit."""
    text = _data_sentence(ctx)
    if ctx.model is not None:
        text += (f" Model: {ctx.model_label}. Forecasts and plans use {ctx.leads_basis()}: about "
                 f"{ctx.expected_leads():,.0f} per month.")
    notes = [ctx.clean_note(n) for n in ctx.notes]
    missing = unobserved_stages(ctx)
    if missing:
        notes.append(f"stage(s) {missing} never appear in the data: their rates are not estimated and are "
                     "shown as 'no data'")
    sec = Section(title=ctx.section.title, text=text, level=1)
    for n in notes:
        sec.add_note(f"Note: {n}.".replace("..", "."))
    ctx.summary["notes"] = notes
    return sec


def diagnostics_banner(ctx: Context) -> Section | None:
    """A warning at the top of a report when a fit (funnel or inflow model) cannot be trusted (else None)."""
    problems = [d.message for d in [ctx.model.diagnostics(warn=False)] if not d.ok]
    if ctx.inflow is not None:
        problems += ["Inflow model: " + d.message for d in [ctx.inflow.diagnostics(warn=False)] if not d.ok]
    if not problems:
        return None
    return Section("Model warning", "", warning=" ".join(problems), level=3)


def _selection_table(sel: pd.DataFrame) -> pd.DataFrame:
    from ..models.selection import choose
    group = sel["stage"] if "stage" in sel else pd.Series("", index=sel.index)
    chosen = {g: choose(sel[group == g]) for g in group.unique()}
    out = pd.DataFrame({
        "comparison": group,
        "variant": sel["variant"],
        "ELPD": sel["elpd"].round(1),
        "ELPD difference to best": sel["elpd_diff"].round(1),
        "SE of difference": sel["dse"].round(1),
        "effective parameters": sel["p_loo"].round(1),
        "bad Pareto k": sel["pareto_k_bad"].astype(int),
    })
    out["chosen"] = ["yes" if chosen[g] == v else "" for g, v in zip(group, sel["variant"])]
    return out


def model_section(ctx: Context) -> Section:
    """Which model produced the numbers and how its variant was chosen (ELPD differences)."""
    from ..models.selection import RULE
    sel = getattr(ctx.model, "selection", None)
    text = f"Every number in this report comes from one model: {ctx.model_label}."
    table = None
    if sel is not None and len(sel):
        text += (f" The variant was chosen by leave-one-out predictive accuracy (PSIS-LOO): {RULE}. "
                 "A difference smaller than 4 or than about two standard errors means the data cannot "
                 "tell the variants apart.")
        table = _selection_table(sel)
        ctx.summary["model_choice"] = {"model": ctx.model_label, "rule": RULE, "comparisons": sel.to_dict("records")}
    else:
        text += " No variants were compared for this fit."
        ctx.summary["model_choice"] = {"model": ctx.model_label, "rule": None, "comparisons": []}
    return Section("Model and how it was chosen", text, None, table)


def _diag_table(d: Any) -> pd.DataFrame:
    return pd.DataFrame({
        "check": ["max r_hat", "min bulk ESS", "min tail ESS", "divergences", "chains x draws"],
        "value": [f"{d.r_hat_max:.3f}", f"{d.ess_bulk_min:.0f}", f"{d.ess_tail_min:.0f}", f"{d.divergences}",
                  f"{d.chains} x {d.draws}"],
        "threshold": ["<= 1.01", ">= 400", "", "0", ""]})


def diagnostics_section(ctx: Context) -> Section:
    """Sampler diagnostics of the funnel model (and the inflow model), with a visible
    warning when a fit is not trustworthy."""
    d = ctx.model.diagnostics(warn=False)
    info = {**d.as_dict(), "model": ctx.model.name}
    table = _diag_table(d).assign(model="funnel") if d.method == "mcmc" else None
    problems = [] if d.ok else [d.message]
    text = d.message if d.ok else "The numbers above may be unreliable until the model converges."
    if ctx.inflow is not None:
        di = ctx.inflow.diagnostics(warn=False)
        info["inflow"] = di.as_dict()
        table = pd.concat([table, _diag_table(di).assign(model="inflow")], ignore_index=True) \
            if table is not None else _diag_table(di).assign(model="inflow")
        text += " Inflow model: " + (di.message if di.ok else "not converged.")
        if not di.ok:
            problems.append("Inflow model: " + di.message)
    ctx.summary["diagnostics"] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                                  for k, v in info.items()}
    if table is not None:
        table = table[["model", "check", "value", "threshold"]]
    sec = Section("Model diagnostics", text, None, table, warning=" ".join(problems))
    for n in d.notes:
        sec.add_note(f"Note: {ctx.clean_note(n)}.".replace("..", "."))
    return sec


def open_report(notebook: str, namespace: Mapping[str, Any], *, progress: bool = False) -> Context:
    """Start a report notebook: parameters, preflight, data and model, header and warnings.

    Parameters
    ----------
    notebook : str
        The notebook's name (which section of the parameter file it reads).
    namespace : mapping
        The notebook's variables (pass ``globals()``); ``summary_path`` (set by the
        runner) says where :func:`funnel_models.reports.summary.write_summary` writes.
    progress : bool
        Show the sampler's progress bar.
    """
    from ..preflight import preflight
    params = from_notebook(notebook, notebook_values(notebook, namespace), where=f"notebook {notebook}")
    preflight(params, notebook, where=f"notebook {notebook}")
    ctx = prepare(notebook, params, progress=progress)
    ctx.summary_path = str(namespace.get("summary_path", "") or "")
    show(ctx, header_section)
    if ctx.model is not None:
        banner = diagnostics_banner(ctx)
        if banner is not None:
            show(ctx, banner)
    return ctx
