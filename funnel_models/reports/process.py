"""The sales process as pictures: stage flows, entry cohorts and time to convert, from the data.

Three sections of the monthly report, each drawn with the shared charts of
:mod:`funnel_models.charts` (Plotly, interactive in the HTML report):

* :func:`flows_section` -- a Sankey of the moves between stages over the last
  ``flow_months`` months (advances, skips, losses, leads going cold) and a funnel chart of
  the leads reaching each stage, with the drop-off between stages;
* :func:`cohort_section` -- entry month × months since entry: share won, share still open;
* :func:`time_to_convert_section` -- months from entering a stage to leaving it, and from
  lead to win.

No model is involved: every number is counted from the leads' monthly statuses. With
``charts_by_segment`` the pictures are repeated for each level of each segment factor.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from ..charts import cohorts as ch
from ..charts import figures as fg
from ..charts import timing as tm
from ..charts.flows import flow_table, funnel_table
from ..data import derive
from ..data.spec import ENTRY
from .context import Context
from .render import Section, month_label, pct

__all__ = ["flows_section", "cohort_section", "time_to_convert_section"]

_NO_LEADS = "needs lead-level data (a stage history or monthly snapshots); not available for aggregate counts."


def _segments(ctx: Context) -> Iterator[tuple[str, dict[str, str]]]:
    """``("all leads", {})``, then each factor level when ``charts_by_segment`` is on."""
    yield "all leads", {}
    if not ctx.params.monthly_report.charts_by_segment or ctx.transitions is None:
        return
    for f in ctx.factors:
        for level in sorted(ctx.transitions[f].dropna().astype(str).unique()):
            yield f"{f}={level}", {f: level}


def _months(ctx: Context) -> int:
    return int(ctx.params.monthly_report.flow_months)


def _flows(ctx: Context, segment: dict[str, str]):
    since = ctx.cutoff_month - pd.DateOffset(months=_months(ctx) - 1)
    names = list(ctx.spec.names) if ctx.spec.names else None
    return flow_table(ctx.transitions, ctx.spec.codes, names=names, segment=segment, since=since,
                      until=ctx.cutoff_month, cold_after=ctx.post.cold_after if ctx.post is not None else None)


def _flow_sentence(ft, ftab: pd.DataFrame) -> str:
    links = ft.links
    new = int(ftab["leads"].iloc[0])
    won = int(ftab["leads"].iloc[-1])
    lost = int(links.loc[links["kind"] == "lost", "n"].sum())
    cold = int(links.loc[links["kind"] == "cold", "n"].sum())
    skips = int(links.loc[(links["kind"] == "skip") & (links["target"] != "WON"), "n"].sum())
    text = (f"Over {ft.period_label()}, {new:,} new leads entered the funnel, {won:,} deals were won and {lost:,} "
            f"leads were lost" + (f"; {cold:,} went cold (no move for the model's cold threshold)" if cold else "")
            + (f"; {skips:,} moves skipped a stage" if skips else "") + ".")
    stages = ftab.iloc[1:]
    drop = stages.dropna(subset=["of_previous"])
    drop = drop[drop["stage"] != ftab["stage"].iloc[1]] if len(drop) > 1 else drop
    if len(drop):
        worst = drop.loc[drop["of_previous"].idxmin()]
        prev = ftab["label"].iloc[ftab.index.get_loc(worst.name) - 1]
        text += (f" The steepest drop is into {worst['label']}: {pct(worst['of_previous'])} as many leads reached "
                 f"it as reached {prev} in the period.")
    return text


def flows_section(ctx: Context) -> Section:
    """Sankey of the stage-to-stage moves and a funnel chart over the last ``flow_months`` months."""
    if ctx.transitions is None:
        return Section("Stage flows", "A picture of the stage flows " + _NO_LEADS)
    figs, table, text = [], None, ""
    for label, seg in _segments(ctx):
        ft = _flows(ctx, seg)
        ftab = funnel_table(ft)
        who = "" if not seg else f" ({label})"
        figs.append(fg.sankey_figure(ft, title=f"Stage flows, {ft.period_label()}{who}", height=420))
        figs.append(fg.funnel_figure(ftab, period=ft.period_label() + who, height=360))
        if not seg:
            text, table = _flow_sentence(ft, ftab), ftab
            ctx.summary["flows"] = {"period": ft.period_label(), "moves": ft.total,
                                    "funnel": dict(zip(ftab["stage"], ftab["leads"].astype(int).tolist()))}
    shown = pd.DataFrame({"stage": table["label"], "leads reaching it": table["leads"],
                          "share of the row above": [pct(x) for x in table["of_previous"]],
                          "share of new leads": [pct(x) for x in table["of_first"]]})
    note = ("Counted from the leads' month-end statuses: a move is a change of stage between two month ends "
            "(staying is not a move). Leads already in the funnel before the period count only for the stages "
            "they reach inside it, so a later stage can exceed an earlier one. Hover a band for its count.")
    return Section(f"Stage flows over the last {_months(ctx)} months", text, figs, shown, note=note)


def cohort_section(ctx: Context) -> Section:
    """Entry month × months since entry: share won and share still open."""
    if not ctx.data.has_leads:
        return Section("Entry cohorts", "A cohort picture " + _NO_LEADS)
    co = derive.cohorts(ctx.data.snapshots(), ctx.spec, cutoff=ctx.data.cutoff)
    figs, text = [], ""
    for label, seg in _segments(ctx):
        t = ch.cohort_table(co, ctx.cutoff_month, months=_months(ctx), segment=seg)
        who = "" if not seg else f" ({label})"
        figs.append(fg.cohort_heatmap_figure(t, title=f"Entry cohorts: how each month's new leads ended up{who}"))
        if not seg:
            text = _cohort_sentence(t)
            ctx.summary["cohorts"] = {"cohorts": int(t["cohort"].nunique()) if len(t) else 0,
                                      "won_within_3": _mean_share(t, 3)}
    note = ("Each row is the leads that entered in that month; each column is their status at the end of the "
            "month that many months later (0: the entry month). Leads still open include leads that have gone "
            "cold without being marked lost. Counted from the data, no model.")
    return Section("Entry cohorts: share won and share still open", text, figs, note=note)


def _mean_share(t: pd.DataFrame, age: int, value: str = "won_share") -> float | None:
    x = t.loc[t["months_since_entry"] == age, value]
    return float(x.mean()) if len(x) else None


def _cohort_sentence(t: pd.DataFrame) -> str:
    if t.empty:
        return "No leads entered in the period."
    top = int(t["months_since_entry"].max())
    parts = [f"{pct(_mean_share(t, a))} within {a} month(s)" for a in sorted({0, min(3, top), min(6, top)})
             if _mean_share(t, a) is not None]
    oldest = t[t["cohort"] == t["cohort"].min()].iloc[-1]
    return (f"On average a month's new leads are won {', '.join(parts)} (month 0 is the entry month). Of the "
            f"{int(oldest['leads']):,} leads that entered in {month_label(oldest['cohort'])}, "
            f"{pct(oldest['won_share'])} are won and {pct(oldest['open_share'])} are still open "
            f"{int(oldest['months_since_entry'])} month(s) later.")


def _median(x: pd.Series) -> float:
    x = pd.to_numeric(x, errors="coerce").dropna()
    return float(np.median(x)) if len(x) else float("nan")


def _timing_table(ctx: Context, d: pd.DataFrame) -> pd.DataFrame:
    names = dict(zip(ctx.spec.codes, ctx.spec.names or ctx.spec.codes))
    x = d[d["stage"] == ENTRY]
    rows = [{"stage": "New lead to win", "leads": len(x), "mean months before leaving": np.nan, "moved on": "–",
             "won": pct(x["months_to_win"].notna().mean()) if len(x) else "–", "lost": "–",
             "still in the stage": "–", "median months to win": _median(x["months_to_win"])}]
    for st in ctx.spec.codes:
        x = d[d["stage"] == st]
        left = x[x["exit"] != "open"]
        share = lambda e: pct((left["exit"] == e).mean()) if len(left) else "–"  # noqa: E731,B023
        rows.append({"stage": f"{st} – {names[st]}", "leads": len(x),
                     "mean months before leaving": float(left["months"].mean()) if len(left) else np.nan,
                     "moved on": share("moved on"), "won": share("won"), "lost": share("lost"),
                     "still in the stage": f"{int((x['exit'] == 'open').sum()):,}",
                     "median months to win": _median(x["months_to_win"])})
    return pd.DataFrame(rows)


def time_to_convert_section(ctx: Context) -> Section:
    """Months from entering each stage to leaving it, and from lead to win (from the data)."""
    if not ctx.data.has_leads:
        return Section("Time to convert", "Time to convert " + _NO_LEADS)
    d = tm.stage_durations(ctx.data.snapshots(), ctx.spec, by=ctx.factors)
    names = dict(zip(ctx.spec.codes, ctx.spec.names or ctx.spec.codes))
    figs, table, text = [], None, ""
    for label, seg in _segments(ctx):
        x = d
        for col, level in seg.items():
            x = x[x[col].astype(str) == level]
        who = "" if not seg else f" ({label})"
        t = tm.time_to_convert_table(x, ctx.spec.codes, max_months=12)
        figs.append(fg.lead_to_win_figure(t, title=f"Months from new lead to win (won leads){who}"))
        figs.append(fg.time_to_convert_figure(t, names, title=f"Months in each stage before leaving it{who}"))
        if not seg:
            table = _timing_table(ctx, d)
            text = _timing_sentence(d)
    note = ("Months in a stage count the month ends a lead was seen there (1: gone by the next month end). "
            "'New lead to win' counts months from a lead's entry month to its win month, for won leads only "
            "(leads still open are left out, so recent slow deals are not yet in it; 12+ collects the longer "
            "ones). Counted from the data, no model.")
    ctx.summary["time_to_convert"] = {"median_months_lead_to_win": _median(d.loc[d["stage"] == ENTRY,
                                                                                  "months_to_win"])}
    return Section("Time to convert, from the data", text, figs, table.round(1), note=note)


def _timing_sentence(d: pd.DataFrame) -> str:
    wins = d.loc[(d["stage"] == ENTRY), "months_to_win"].dropna()
    if wins.empty:
        return "No lead has been won yet, so there is no time to win to show."
    within3 = float((wins <= 3).mean())
    left = d[(d["stage"] != ENTRY) & (d["exit"] != "open")]
    slow = left.groupby("stage")["months"].mean().sort_values(ascending=False)
    longest = (f" Leads wait longest in {slow.index[0]}: {slow.iloc[0]:.1f} months on average before leaving it."
               if len(slow) else "")
    return (f"A won lead took a median of {np.median(wins):.0f} month(s) from entry to win ({pct(within3)} within "
            f"3 months, {len(wins):,} won leads).{longest}")
