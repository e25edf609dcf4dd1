"""The sections of the monthly funnel report that describe the funnel as it is.

The funnel this month, where today's leads are heading (win rate of a new lead, eventual
win rate of the open pipeline, the share gone cold, time to win), stage conversion
against benchmarks, stall times and segments. The forward-looking sections (early
warning, inflow, forecast, leads needed, bottlenecks) are in
:mod:`funnel_models.reports.outlook`. Each function takes the
:class:`~funnel_models.reports.context.Context`, records its key numbers in
``ctx.summary`` and returns a :class:`~funnel_models.reports.render.Section`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..charts.headline import months_to_win_text
from ..data.spec import ENTRY
from . import plots
from .about import unobserved_stages
from .context import Context
from .render import Section, month_label, pct, signed

__all__ = ["funnel_section", "pipeline_section", "conversion_section", "stall_section", "segment_section",
           "raw_segment_rates"]


def _name(ctx: Context, code: str) -> str:
    spec = ctx.spec
    return spec.names[spec.codes.index(code)] if code in spec.codes and spec.names else code


def funnel_section(ctx: Context) -> Section:
    """Leads per stage this month and the change since last month."""
    c = ctx.counts
    month = ctx.cutoff_month
    this = c[pd.to_datetime(c["month"]) == month].set_index("stage").reindex(list(ctx.spec.states))
    change = this["change"].to_numpy(float)
    table = pd.DataFrame({"stage": this.index, "name": [_name(ctx, s) for s in this.index],
                          "leads": this["count"].fillna(0).astype(int).to_numpy(), "change vs last month": change})
    K = ctx.spec.n_stages
    open_now = int(table["leads"].iloc[:K].sum())
    diff = float(np.nansum(change[:K]))
    won = int(table.loc[table["stage"] == "WON", "leads"].iloc[0])
    won_change = change[K]
    what = "leads are open at the end of" if ctx.data.has_leads else "leads entered the open stages in"
    text = (f"{open_now:,} {what} {month_label(month)} ({signed(diff)} since last month) and {won:,} deals were "
            f"won this month" + (f" ({signed(won_change)} vs last month)." if np.isfinite(won_change) else "."))
    fig = plots.funnel_chart(table, month=month_label(month), entries=not ctx.data.has_leads)
    table["change vs last month"] = [signed(x) for x in change]
    table["change %"] = [signed(x, 1) + "%" if np.isfinite(x) else "–" for x in this["pct_change"].to_numpy(float)]
    ctx.summary["funnel"] = {"month": month_label(month), "open": open_now, "won": won,
                             "counts": dict(zip(table["stage"], table["leads"].astype(int).tolist()))}
    return Section("Funnel this month", text, fig, table)


def _interval(d: np.ndarray, level: float) -> tuple[float, float, float]:
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)


def _pipeline_sentence(ctx: Context, out: pd.DataFrame, won: float) -> str:
    total = out.iloc[-1]
    if total["open"] == 0:
        return "There are no open leads at the cut-off."
    cold = (f"Of the {int(total['open']):,} open leads, {pct(total['cold_share'])} are effectively cold (no move "
            f"for {ctx.post.cold_after} or more months)" if np.isfinite(total["cold_share"]) else
            f"There are {int(total['open']):,} open leads (the model is memoryless, so it does not tell cold "
            "leads apart)")
    cold += (f"; {pct(total['unlikely_share'])} have less than a tenth of a new lead's chance of ever being won "
             "(by their stage and months in it).")
    return (f"{cold} The open pipeline will eventually win about "
            f"{won:,.0f} of them ({pct(total['win_rate_mean'], 1)}, {ctx.level:.0%} interval "
            f"{pct(total['win_rate_lo'], 1)}-{pct(total['win_rate_hi'], 1)}); "
            f"{pct(total['p_won_within_mean'], 1)} within {out.attrs['months']} months.")


def pipeline_section(ctx: Context) -> Section:
    """Where leads are heading: win rate of a new lead, outcomes, time to win, today's
    open pipeline (eventual win rate, share gone cold)."""
    from ..simulate import pipeline_outlook
    post, lv = ctx.post, ctx.level
    H = int(getattr(ctx.section, "horizon", 6))
    out = pipeline_outlook(post, ctx.pipeline, months=H, start=ctx.cutoff_month, level=lv)
    w = _interval(post.lead_win_rate(), lv)
    outcomes = post.lead_outcomes().mean(0)
    months_to_win = ctx.cycle_months
    won = float(out.iloc[-1]["win_rate_mean"] * out.iloc[-1]["open"]) if out.iloc[-1]["open"] else 0.0
    cold_part = f", {pct(outcomes[2])} go cold" if post.cold_after is not None else ""
    text = (f"A new lead is eventually won with probability {pct(w[0], 1)} ({lv:.0%} interval {pct(w[1], 1)}-"
            f"{pct(w[2], 1)}); {pct(outcomes[1])} are lost{cold_part}. A won lead is typically won "
            f"{months_to_win_text(months_to_win)} (median). " + _pipeline_sentence(ctx, out, won))
    table = pd.DataFrame({"stage": out["stage"], "open leads": out["open"],
                          "cold": [f"{int(c):,}" if np.isfinite(c) else "–" for c in out["cold"]],
                          "cold share": [pct(x) for x in out["cold_share"]],
                          "long shots": [pct(x) for x in out["unlikely_share"]],
                          "eventual win rate": [pct(x, 1) for x in out["win_rate_mean"]],
                          f"lo {lv:.0%}": [pct(x, 1) for x in out["win_rate_lo"]],
                          f"hi {lv:.0%}": [pct(x, 1) for x in out["win_rate_hi"]],
                          f"won within {H} months": [pct(x, 1) for x in out["p_won_within_mean"]]})
    if post.cold_after is None:                    # memoryless: no cold age to tell apart
        table = table.drop(columns=["cold", "cold share"])
    fig = plots.pipeline_chart(out, w, level=lv)
    tot = out.iloc[-1]
    ctx.summary["outlook"] = {
        "new_lead_win_rate": {"mean": w[0], "lo": w[1], "hi": w[2]},
        "new_lead_outcomes": {"won": float(outcomes[0]), "lost": float(outcomes[1]), "cold": float(outcomes[2])},
        "median_months_to_win": months_to_win,
        "pipeline": {"open": int(tot["open"]), "cold": None if not np.isfinite(tot["cold"]) else int(tot["cold"]),
                     "cold_share": None if not np.isfinite(tot["cold_share"]) else float(tot["cold_share"]),
                     "long_shot_share": (None if not np.isfinite(tot["unlikely_share"])
                                         else float(tot["unlikely_share"])),
                     "eventual_win_rate": None if not np.isfinite(tot["win_rate_mean"]) else float(tot["win_rate_mean"]),
                     "eventual_wins": won}}
    return Section("Where today's leads are heading", text, fig, table,
                   note=f"Source: {ctx.model_label}.")


def conversion_section(ctx: Context) -> Section:
    """Stage conversion with intervals against benchmarks (stages without data marked)."""
    from ..simulate import benchmark_gaps
    lv = ctx.level
    st = ctx.post.stage_table(lv)
    missing = unobserved_stages(ctx)
    for col in ("conversion_mean", "conversion_lo", "conversion_hi"):
        st.loc[st["stage"].isin(missing), col] = np.nan
    bench = dict(ctx.params.monthly_report.benchmarks)
    table = pd.DataFrame({"stage": st["stage"], "name": [_name(ctx, s) for s in st["stage"]],
                          "conversion": [pct(x, 1) if np.isfinite(x) else "no data" for x in st["conversion_mean"]],
                          f"lo {lv:.0%}": [pct(x, 1) for x in st["conversion_lo"]],
                          f"hi {lv:.0%}": [pct(x, 1) for x in st["conversion_hi"]],
                          "benchmark": [pct(bench[s]) if s in bench else "–" for s in st["stage"]]})
    text = "No benchmarks given (add monthly_report: {benchmarks: {STAGE: 0.6}} to compare)."
    if bench:
        gaps = benchmark_gaps(ctx.post, bench, ctx.expected_leads(), level=lv).set_index("stage")
        table["P(below benchmark)"] = [f"{gaps.loc[s, 'p_below']:.2f}" if s in gaps.index else "–" for s in st["stage"]]
        table["extra wins/month at benchmark"] = [f"{gaps.loc[s, 'wins_gap_mean']:.1f}" if s in gaps.index else "–"
                                                  for s in st["stage"]]
        below = gaps[(gaps["p_below"] >= 0.9) & ~gaps.index.isin(missing)].sort_values("wins_gap_mean", ascending=False)
        text = "No stage is clearly (P >= 0.9) below its benchmark."
        if len(below):
            r = below.iloc[0]
            text = (f"{len(below)} stage(s) are very probably below benchmark; the costliest is {below.index[0]} "
                    f"({pct(r['conversion_mean'])} vs {pct(r['benchmark'])}), worth {r['wins_gap_mean']:.1f} extra "
                    "wins per month at benchmark.")
    fig = plots.conversion_chart(st, bench, level=lv)
    ctx.summary["conversion"] = {s: (None if not np.isfinite(v) else float(v))
                                 for s, v in zip(st["stage"], st["conversion_mean"])}
    return Section("Stage conversion vs benchmarks", text, fig, table, note=f"Source: {ctx.model_label}.")


def stall_section(ctx: Context) -> Section:
    """Expected months prospects stay in each stage (stages without data left out)."""
    from ..simulate import stall_ranking
    lv = ctx.level
    sr = stall_ranking(ctx.post, level=lv)
    sr = sr[~sr["stage"].isin(unobserved_stages(ctx))].reset_index(drop=True)
    sr["rank"] = np.arange(1, len(sr) + 1)
    top = sr.iloc[0]
    text = (f"Prospects stall longest in {top['stage']} ({top['name']}): {top['expected_months_mean']:.1f} months on "
            f"average ({top['expected_months_lo']:.1f}-{top['expected_months_hi']:.1f}), counting the month they "
            "arrive" + (f" and at most {ctx.post.cold_after} months before a lead counts as cold."
                        if ctx.post.cold_after is not None else "."))
    table = pd.DataFrame({"rank": sr["rank"], "stage": sr["stage"], "name": sr["name"],
                          "expected months": sr["expected_months_mean"].round(2),
                          f"lo {lv:.0%}": sr["expected_months_lo"].round(2),
                          f"hi {lv:.0%}": sr["expected_months_hi"].round(2),
                          "median months": sr["median_months_mean"].round(1)})
    fig = plots.stall_chart(sr, level=lv)
    ctx.summary["stall_longest"] = {"stage": str(top["stage"]), "months": float(top["expected_months_mean"])}
    return Section("Stall times", text, fig, table, note=f"Source: {ctx.model_label}.")


def raw_segment_rates(ctx: Context, factor: str) -> pd.DataFrame:
    """Raw win share per level of ``factor``: leads won so far / new leads (no model).

    What a spreadsheet shows. Leads still open count as not won, so it is below the
    eventual win rate where many leads are young.
    """
    tr = ctx.data.transitions([factor])
    rows = []
    for level, g in tr.groupby(factor, observed=True):
        n = int(g.loc[g["from_stage"] == ENTRY, "n"].sum())
        won = int(g.loc[(g["to_stage"] == "WON") & (g["from_stage"] != "WON"), "n"].sum())
        rows.append({"level": str(level), "raw_win_rate": won / n if n else float("nan"), "leads": n})
    return pd.DataFrame(rows)


def segment_section(ctx: Context) -> Section:
    """Lead win rate per segment: the model's estimate beside the segment's raw rate."""
    lv = ctx.level
    frames = []
    for f in ctx.factors:
        for _, r in raw_segment_rates(ctx, f).iterrows():
            m, lo, hi = _interval(ctx.posterior({f: r["level"]}).lead_win_rate(), lv)
            frames.append({"factor": f, "segment": r["level"], "leads": int(r["leads"]), "model": m, "lo": lo,
                           "hi": hi, "raw": float(r["raw_win_rate"])})
    if not frames:
        return Section("Segments", "No segment factors in the model (set 'factors' to compare segments).")
    seg = pd.DataFrame(frames)
    overall = float(ctx.post.lead_win_rate().mean())
    best, worst = seg.loc[seg["model"].idxmax()], seg.loc[seg["model"].idxmin()]
    text = (f"Of every 100 new leads about {100 * overall:.1f} are eventually won; by segment the best is "
            f"{best['factor']}={best['segment']} at {pct(best['model'], 1)} and the weakest "
            f"{worst['factor']}={worst['segment']} at {pct(worst['model'], 1)} (the share won so far, without a "
            f"model, ranges from {pct(seg['raw'].min(), 1)} to {pct(seg['raw'].max(), 1)}).")
    table = pd.DataFrame({"factor": seg["factor"], "segment": seg["segment"], "leads": seg["leads"],
                          "model win rate": [pct(x, 1) for x in seg["model"]],
                          f"lo {lv:.0%}": [pct(x, 1) for x in seg["lo"]], f"hi {lv:.0%}": [pct(x, 1) for x in seg["hi"]],
                          "raw share won so far": [pct(x, 1) for x in seg["raw"]]})
    fig = plots.segment_chart(seg, overall=overall, level=lv)
    ctx.summary["segments"] = seg[["factor", "segment", "leads", "model", "raw"]].to_dict("records")
    note = ("Raw rates are the share of the segment's leads won so far (open leads count as not won, so they "
            "fall short of the eventual rate where leads are young). " +
            ("Model estimates are for a segment at the average of the other factors. " if len(ctx.factors) > 1 else ""))
    return Section("Segments: model estimate vs raw rates", text, fig, table,
                   note=note + f"Source: {ctx.model_label}.")
