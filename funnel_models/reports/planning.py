"""Sections of the lead planning notebook: leads per period, leads per segment."""
from __future__ import annotations

import pandas as pd

from . import plots
from .context import Context
from .outlook import target_wins
from .render import Section, month_label

__all__ = ["plan_periods_section", "plan_segments_section", "period_windows"]


def period_windows(period: str, periods: int) -> list[tuple[str, int, int]]:
    """``(label, first month, last month)`` of each planned period (forecast months 1..)."""
    size = 3 if period == "quarter" else 1
    return [(f"{period} {i + 1}", i * size + 1, (i + 1) * size) for i in range(periods)]


def _plan_row(ctx: Context, label: str, a: int, T: int) -> dict:
    from ..simulate import leads_needed
    s = ctx.params.lead_planning
    target, derived = target_wins(ctx, s.target_wins, (a, T))
    r = leads_needed(ctx.post, target, (a, T), pipeline=ctx.pipeline, confidence=s.confidence, seed=ctx.seed,
                     start=ctx.cutoff_month)
    return {"period": label, "months": f"{month_label(ctx.cutoff_month + pd.DateOffset(months=a))} to "
                                       f"{month_label(ctx.cutoff_month + pd.DateOffset(months=T))}",
            "target wins": target, "target derived": derived,
            "leads per month": r.leads if r.feasible else "not reachable", "P(hit)": round(r.probability, 2),
            "naive leads per month": r.naive_leads, "naive P(hit)": round(r.naive_probability, 2),
            "pipeline only P": round(r.pipeline_probability, 2)}


def plan_periods_section(ctx: Context) -> Section:
    """Leads per month needed for the target in each coming period."""
    s = ctx.params.lead_planning
    table = pd.DataFrame([_plan_row(ctx, *w) for w in period_windows(s.period, s.periods)])
    first = table.iloc[0]
    derived = bool(table["target derived"].any())
    parts = [f"{r['leads per month']} leads/month for {r['period']} (target {r['target wins']:g} wins)"
             if r["leads per month"] != "not reachable" else
             f"{r['period']}: out of reach for new leads (the open pipeline decides it, P = {r['pipeline only P']:.2f})"
             for _, r in table.iterrows()]
    text = (f"To hit each {s.period}'s target with {s.confidence:.0%} confidence, plan " + ", ".join(parts)
            + f"; the naive plan for {first['period']} ({first['naive leads per month']}/month) hits with "
            f"P = {first['naive P(hit)']:.2f}.")
    fig = plots.plan_chart(table, x="period", title=f"New leads per month needed per {s.period}")
    ctx.summary["plan_periods"] = table.drop(columns=["target derived"]).to_dict("records")
    note = ("Targets left out of the parameters are derived: 10% above the wins the funnel is expected to "
            "deliver in the period. " if derived else "")
    return Section(f"Leads needed per {s.period}", text, fig, table.drop(columns=["target derived"]),
                   note=note + f"Source: {ctx.model_label}.")


def _segment_targets(ctx: Context, f: str, total: float) -> dict[str, float]:
    s = ctx.params.lead_planning
    if s.segment_targets:
        return dict(s.segment_targets)
    t = ctx.transitions
    won = t[t["to_stage"] == "WON"]
    recent = won[pd.to_datetime(won["month"]) > ctx.cutoff_month - pd.DateOffset(months=12)]
    share = recent.groupby(f, observed=True)["n"].sum()
    share = share / share.sum()
    return {str(k): float(total * v) for k, v in share.items()}


def plan_segments_section(ctx: Context) -> Section:
    """Leads per month needed per segment level for its share of the last period's target."""
    from ..simulate import leads_needed
    s = ctx.params.lead_planning
    f = s.plan_by
    if not f or f not in ctx.factors:
        why = "No plan_by factor given." if not f else f"{f!r} has a single level after the filters."
        return Section("Leads needed per segment", why)
    label, a, T = period_windows(s.period, s.periods)[-1]      # the last period: new leads can act on it
    total, _ = target_wins(ctx, s.target_wins, (a, T))
    rows = []
    for level, tgt in _segment_targets(ctx, f, total).items():
        pipe = ctx.pipeline[ctx.pipeline[f].astype(str) == str(level)] if f in ctx.pipeline else None
        r = leads_needed(ctx.posterior({f: level}), tgt, (a, T), pipeline=pipe, confidence=s.confidence,
                         seed=ctx.seed, start=ctx.cutoff_month)
        rows.append({"segment": f"{f}={level}", "target wins": round(tgt, 1),
                     "open deals": 0 if pipe is None else len(pipe),
                     "leads per month": r.leads if r.feasible else "not reachable", "P(hit)": round(r.probability, 2),
                     "naive leads per month": r.naive_leads, "naive P(hit)": round(r.naive_probability, 2)})
    table = pd.DataFrame(rows)
    num = pd.to_numeric(table["leads per month"], errors="coerce")
    out = table.loc[num.isna(), "segment"].tolist()
    how = "the given segment targets" if s.segment_targets else "recent win share"
    text = (f"Splitting the {label} target by {how}, the segments need {num.sum():,.0f} new leads per month in "
            "total; each segment must hit its own target, so this is more than the pooled plan."
            + (f" Out of reach for new leads: {', '.join(out)}." if out else ""))
    fig = plots.plan_chart(table, x="segment", title=f"New leads per month needed per {f} ({label})")
    ctx.summary["plan_segments"] = table.to_dict("records")
    return Section(f"Leads needed per {f}", text, fig, table, note=f"Source: {ctx.model_label}.")
