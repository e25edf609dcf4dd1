"""The forward-looking sections of the monthly report: early warning, this month's inflow,
the forecast, the leads needed for the target, and where to focus.

Forecasts and plans take their new leads from :meth:`Context.leads
<funnel_models.reports.context.Context.leads>`: draws of the inflow model (so the bands
carry the inflow's uncertainty) unless ``new_leads`` fixes a plan. A target left out of
the parameter file is derived from the data (:func:`funnel_models.simulate.default_target`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..charts.headline import HeadlineFacts, headline_items, lever_kind, lever_text
from . import plots
from .context import Context
from .render import Section, month_label

__all__ = ["warning_section", "inflow_section", "forecast_section", "leads_section", "bottleneck_section",
           "FORECAST_LEVELS", "target_wins"]

#: Interval levels of the forecast fan chart (summary.json reports the 80% interval).
FORECAST_LEVELS = (0.5, 0.8, 0.95)


def _previous(ctx: Context) -> tuple[pd.Timestamp, pd.DataFrame] | None:
    """Last month and the open pipeline at its end (None without lead-level data or a last month)."""
    prev = ctx.cutoff_month - pd.DateOffset(months=1)
    if not ctx.data.has_leads or not (pd.to_datetime(ctx.counts["month"]) == prev).any():
        return None
    return prev, ctx.data.pipeline(cutoff=ctx.cutoff_month - pd.Timedelta(days=1))


def _new_now(ctx: Context) -> int:
    s = ctx.new_leads_by_month()
    return int(s.get(ctx.cutoff_month, 0))


def warning_section(ctx: Context) -> Section:
    """Early warning: stages whose count this month is outside the predictive interval."""
    from ..simulate import early_warning
    before = _previous(ctx)
    if before is None:
        return Section("Early warnings", "An early warning needs lead-level data and a previous month; not "
                                         "available for this data.")
    prev_month, prev_pipe = before
    c = ctx.counts[pd.to_datetime(ctx.counts["month"]) == ctx.cutoff_month]
    cur = {str(s): int(n) for s, n in zip(c["stage"], c["count"])}
    lv = float(ctx.params.monthly_report.warning_level)
    res = early_warning(ctx.post, prev_pipe, cur, _new_now(ctx), level=lv, horizon=ctx.params.monthly_report.horizon,
                        seed=ctx.seed, start=prev_month)
    st = res.stages
    flagged = st[st["flag"] != ""]
    warn = ""
    if flagged.empty:
        text = f"Every stage's count this month is inside the model's {lv:.0%} predictive range: no warning."
    else:
        parts = [f"{r['stage']} is {r['flag']} ({r['observed']:.0f} vs expected {r['lo']:.0f}-{r['hi']:.0f})"
                 for _, r in flagged.iterrows()]
        cum = float(res.projection["cumulative_difference"].iloc[-1])
        text = (f"{len(flagged)} stage(s) are outside the {lv:.0%} predictive range: " + "; ".join(parts)
                + f". If nothing changes this shifts wins over the next {len(res.projection)} months by {cum:+.1f}.")
        warn = "Early warning: " + "; ".join(parts) + "."
    table = st.assign(expected=st["expected"].round(1), lo=st["lo"].round(0), hi=st["hi"].round(0),
                      percentile=st["percentile"].round(2))
    fig = plots.warning_chart(st, level=lv, month=month_label(ctx.cutoff_month))
    ctx.summary["early_warning"] = {"flagged": flagged["stage"].tolist(),
                                    "flags": dict(zip(flagged["stage"], flagged["flag"]))}
    return Section("Early warnings", text, fig, table, warning=warn, note=f"Source: {ctx.model_label}.")


def _expected_now(ctx: Context) -> np.ndarray:
    """What was expected for this month's new leads: inflow-model draws, else the mean of the 3 months before."""
    if ctx.inflow is not None:
        return np.asarray(ctx.inflow.expected(0), float)
    s = ctx.new_leads_by_month()
    before = s[s.index < ctx.cutoff_month].tail(3)
    return np.array([float(before.mean()) if len(before) else float(_new_now(ctx))])


def inflow_section(ctx: Context) -> Section:
    """This month's new leads against expectation, and their lagged effect on the coming months' wins."""
    from ..simulate import inflow_effect
    before = _previous(ctx)
    H = int(ctx.params.monthly_report.horizon)
    if before is None:
        return Section("New leads this month", "The lagged effect of this month's new leads needs lead-level data "
                                               "and a previous month; not available for this data.")
    prev_month, prev_pipe = before
    obs = _new_now(ctx)
    exp = _expected_now(ctx)
    lv = ctx.level
    fx = inflow_effect(ctx.post, prev_pipe, obs, exp, H, start=prev_month, level=lv, seed=ctx.seed)
    e_mean, (e_lo, e_hi) = float(exp.mean()), np.quantile(exp, [(1 - lv) / 2, (1 + lv) / 2])
    peak = fx.iloc[int(np.argmax(np.abs(fx["difference_mean"].to_numpy())))]
    cum = fx.iloc[-1]
    basis = "the inflow model" if ctx.inflow is not None else "the mean of the 3 months before"
    text = (f"{obs:,} new leads arrived in {month_label(ctx.cutoff_month)}; {basis} expected {e_mean:,.0f}"
            + (f" ({lv:.0%} interval {e_lo:,.0f}-{e_hi:,.0f})" if e_hi > e_lo else "") +
            f". Carried through the funnel this changes wins by {cum['cumulative_difference_mean']:+.1f} over the "
            f"next {H} months ({cum['cumulative_difference_lo']:+.1f} to {cum['cumulative_difference_hi']:+.1f}), "
            f"most in {month_label(peak['month'])} ({peak['difference_mean']:+.1f}).")
    table = pd.DataFrame({"month": [month_label(m) for m in fx["month"]],
                          "wins expected (expected inflow)": fx["wins_expected_inflow"].round(1),
                          "wins expected (actual inflow)": fx["wins_observed_inflow"].round(1),
                          "difference": fx["difference_mean"].round(2),
                          f"lo {lv:.0%}": fx["difference_lo"].round(2), f"hi {lv:.0%}": fx["difference_hi"].round(2),
                          "P(fewer wins)": fx["p_fewer"].round(2)})
    history = ctx.inflow.history(lv) if ctx.inflow is not None else None
    fig = plots.inflow_chart(ctx.new_leads_by_month(), history, fx, level=lv)
    ctx.summary["inflow"] = {"month": month_label(ctx.cutoff_month), "observed": obs, "expected_mean": e_mean,
                             "effect_total": float(cum["cumulative_difference_mean"]),
                             "effect": [{"month": month_label(r["month"]), "difference_mean": float(r["difference_mean"])}
                                        for _, r in fx.iterrows()]}
    return Section("New leads this month and what they mean later", text, fig, table,
                   note=f"Source: {ctx.model_label}; expected new leads from {basis}.")


def forecast_section(ctx: Context) -> Section:
    """Wins per month for the next ``horizon`` months (fan chart)."""
    from ..simulate import forecast
    H = int(ctx.params.monthly_report.horizon)
    fc = forecast(ctx.post, ctx.pipeline, ctx.leads(H), H, seed=ctx.seed, start=ctx.cutoff_month)
    w = fc.intervals(FORECAST_LEVELS)
    w = w[w["quantity"] == "wins"].reset_index(drop=True)
    c = ctx.counts
    won = c[c["stage"] == "WON"][["month", "count"]].tail(12)
    total = fc.wins.sum(axis=1)
    t_lo, t_hi = np.quantile(total, [0.1, 0.9])
    text = (f"Over the next {H} months the model expects {total.mean():.0f} wins in total (80% interval "
            f"{t_lo:.0f}-{t_hi:.0f}), {w['mean'].iloc[0]:.1f} of them in {month_label(w['month'].iloc[0])}, from "
            f"{int(fc.pipeline.sum()):,} open deals and about {ctx.expected_leads(H):,.0f} new leads per month.")
    table = pd.DataFrame({"month": [month_label(m) for m in w["month"]],
                          "expected wins": w["mean"].map(lambda x: f"{x:.1f}"),
                          "80% low": w["lo_80"].map(lambda x: f"{x:.0f}"), "80% high": w["hi_80"].map(lambda x: f"{x:.0f}"),
                          "95% low": w["lo_95"].map(lambda x: f"{x:.0f}"), "95% high": w["hi_95"].map(lambda x: f"{x:.0f}")})
    fig = plots.forecast_fan(w, history=won)
    ctx.summary["forecast"] = [{"month": month_label(r["month"]), "wins_mean": float(r["mean"]),
                                "wins_lo_80": float(r["lo_80"]), "wins_hi_80": float(r["hi_80"])}
                               for _, r in w.iterrows()]
    ctx.summary["forecast_total"] = {"wins_mean": float(total.mean()), "wins_lo_80": float(t_lo),
                                     "wins_hi_80": float(t_hi)}
    return Section(f"Forecast: wins in the next {H} months", text, fig, table,
                   note=f"Source: {ctx.model_label}; {ctx.leads_basis()}.")


def target_wins(ctx: Context, target: float | None, window: tuple[int, int]) -> tuple[float, bool]:
    """The target of a window: the parameter, or derived from the data (and whether it was derived)."""
    if target is not None:
        return float(target), False
    from ..simulate import default_target
    return default_target(ctx.post, ctx.pipeline, ctx.leads(window[1]), window, start=ctx.cutoff_month), True


def _baseline_plan(ctx: Context, target: float, T: int, confidence: float) -> dict:
    """P(hit) with the uncertain inflow that comes anyway, and the leads to add on top."""
    from ..simulate import leads_needed
    if ctx.inflow is None:
        return {}
    b = leads_needed(ctx.post, target, T, pipeline=ctx.pipeline, confidence=confidence, seed=ctx.seed,
                     start=ctx.cutoff_month, baseline=ctx.leads(T))
    return {"baseline_probability": float(b.baseline_probability), "extra_leads": b.leads, "feasible": b.feasible}


def _open_leads(ctx: Context) -> int:
    p = ctx.pipeline
    return int(p["count"].sum() if "count" in p else len(p))


def headline_facts(ctx: Context, res: object, target: float, T: int) -> HeadlineFacts:
    """The facts beside the leads-needed answer: today's volume, the pipeline's share of the
    target, the typical months from lead to win, the spreadsheet answer."""
    vol = ctx.recent_leads()
    needed = res.leads if res.feasible else None
    return HeadlineFacts(
        volume=vol, needed=needed, ratio_to_volume=needed / vol if needed is not None and vol > 0 else float("nan"),
        target_wins=float(target), pipeline_leads=_open_leads(ctx), pipeline_wins=float(res.expected_pipeline_wins),
        pipeline_share=float(res.expected_pipeline_wins / target) if target > 0 else float("nan"),
        pipeline_probability=float(res.pipeline_probability), cycle_months=ctx.cycle_months,
        min_months=res.min_months_to_win, naive_leads=res.naive_leads, naive_rate=float(res.naive_rate),
        naive_probability=float(res.naive_probability), window=T)


def _p_at(res: object, leads: float) -> float:
    """P(hit) with ``leads`` new leads per month (the curve's model, any value)."""
    return float(res.problem.probability(int(round(leads)))[0])


def leads_section(ctx: Context) -> Section:
    """New leads per month needed to hit the target, the probability curve, the naive answer."""
    from ..simulate import leads_needed
    s = ctx.params.monthly_report
    T, conf = int(s.window_months), float(s.confidence)
    target, derived = target_wins(ctx, s.target_wins, (1, T))
    res = leads_needed(ctx.post, target, T, pipeline=ctx.pipeline, confidence=conf, seed=ctx.seed,
                       start=ctx.cutoff_month)
    base = _baseline_plan(ctx, target, T, conf)
    tgt = f"{target:g} wins in the next {T} months" + (" (derived: 10% above the expected wins)" if derived else "")
    if res.feasible:
        text = (f"To reach {tgt} with {conf:.0%} confidence you need {res.leads:,} new leads per month "
                f"(P(hit) = {res.probability:.2f}); the naive spreadsheet answer of {res.naive_leads:,} leads per month "
                f"would hit it with P = {res.naive_probability:.2f}. The open pipeline alone gives "
                f"P = {res.pipeline_probability:.2f}.")
    else:
        text = f"No lead volume reaches {tgt} with {conf:.0%} confidence: {res.message}."
    if base:
        extra = ("no number of extra leads reaches the confidence" if not base["feasible"] else
                 "that is already enough" if not base["extra_leads"] else
                 f"about {base['extra_leads']:,} more per month on top reach {conf:.0%}")
        text += (f" With the new leads the inflow model expects (about {ctx.expected_leads(T):,.0f} per month, "
                 f"uncertain) P(hit) = {base['baseline_probability']:.2f}; {extra}.")
    rows = [("model plan", res.leads if res.leads is not None else np.nan, res.probability),
            ("naive (target / win rate)", res.naive_leads, res.naive_probability),
            ("pipeline only", 0, res.pipeline_probability)]
    if base:
        rows.append(("expected inflow (uncertain)", round(ctx.expected_leads(T)), base["baseline_probability"]))
    facts = headline_facts(ctx, res, target, T)
    today = (facts.volume, _p_at(res, facts.volume)) if np.isfinite(facts.volume) else None
    if today is not None:
        rows.append(("today's volume (mean of the last 3 months)", round(facts.volume), today[1]))
    table = pd.DataFrame(rows, columns=["plan", "new leads per month", "P(hit)"]).assign(**{"P(hit)": lambda d: d["P(hit)"].round(2)})
    ctx.summary["leads_needed"] = {
        "target_wins": float(target), "target_derived": derived, "window_months": T, "confidence": conf,
        "feasible": bool(res.feasible), "leads": res.leads, "probability": float(res.probability),
        "naive_leads": res.naive_leads, "naive_probability": float(res.naive_probability),
        "naive_rate": float(res.naive_rate), "pipeline_probability": float(res.pipeline_probability),
        "message": res.message, "today_leads": facts.volume, "today_probability": today[1] if today else None,
        "pipeline_share": facts.pipeline_share, "months_to_win": facts.cycle_months, **base}
    return Section("Leads needed to hit the target", text, plots.leads_curve(res, today=today), table,
                   points=headline_items(facts),
                   warning="" if res.feasible else "Target not reachable: " + res.message,
                   note=f"Source: {ctx.model_label}.")


def bottleneck_section(ctx: Context) -> Section:
    """Ranking of levers by extra wins per month: where to focus."""
    from ..simulate import leverage
    H, lv = int(ctx.params.monthly_report.horizon), ctx.level
    lev = leverage(ctx.post, ctx.pipeline, ctx.leads(H), H, level=lv, start=ctx.cutoff_month)
    top = lev.iloc[0]
    text = (f"Focus here: {lever_text(top['lever'])} at {top['stage']} ({top['name']}) adds about {top['extra_wins_mean']:.1f} "
            f"wins per month over the next {H} months ({top['extra_wins_lo']:.1f}-{top['extra_wins_hi']:.1f}), more "
            "than any other single lever.")
    h = lev.head(8)
    table = pd.DataFrame({"rank": h["rank"], "stage": h["stage"], "name": h["name"], "lever": h["lever"], "kind": [lever_kind(x) for x in h["lever"]],
                          "extra wins/month": h["extra_wins_mean"].round(2), f"lo {lv:.0%}": h["extra_wins_lo"].round(2),
                          f"hi {lv:.0%}": h["extra_wins_hi"].round(2), "P(helps)": h["p_positive"].round(2),
                          "focus": h["focus"]})
    ctx.summary["bottleneck"] = {"stage": str(top["stage"]), "name": str(top["name"]), "lever": str(top["lever"]),
                                 "extra_wins_mean": float(top["extra_wins_mean"])}
    return Section("Bottleneck ranking: focus here", text, plots.bottleneck_chart(h, level=lv), table,
                   note="Conversion levers are relative (+10% of the stage's own conversion, e.g. 40% -> 44%); stall "
                        f"levers are absolute (one month less in the stage). Source: {ctx.model_label}.")
