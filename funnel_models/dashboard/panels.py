"""HTML pieces of the dashboard: style sheet, headline cards, the where-to-act table.

Plain functions from answers to HTML strings (escaped), shared by the live widget and
its static snapshot.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .charts import fmt_number
from .engine import Answer
from .explain import lever_text

__all__ = ["CSS", "kpi_html", "headline_cards", "leverage_html"]

CSS = """
<style>
.funnel-dashboard { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2933;
  max-width: 1400px; }
.funnel-dashboard .widget-label, .funnel-dashboard .widget-readout { font-size: 13px; }
.funnel-header h2 { margin: 4px 0 2px 0; font-size: 20px; }
.funnel-header .sub { color: #52606d; font-size: 13px; }
.funnel-controls { background: #f5f7fa; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 10px; }
.funnel-controls h4 { margin: 8px 0 4px 0; font-size: 13px; text-transform: uppercase; letter-spacing: .04em;
  color: #52606d; }
.funnel-kpi { background: white; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 14px; min-height: 86px; }
.funnel-kpi .kpi-label { color: #52606d; font-size: 13px; }
.funnel-kpi .kpi-value { font-size: 30px; font-weight: 600; line-height: 1.25; }
.funnel-kpi .kpi-note { color: #52606d; font-size: 12px; }
.funnel-kpi .good .kpi-value { color: #1f7a4d; }
.funnel-kpi .bad .kpi-value { color: #b42318; }
.funnel-why { margin: 4px 0; padding-left: 18px; font-size: 13px; color: #3e4c59; line-height: 1.45; }
.funnel-help { font-size: 13px; color: #3e4c59; }
.funnel-help summary { cursor: pointer; font-weight: 600; color: #1f2933; }
.funnel-chart { background: white; border: 1px solid #e4e7eb; border-radius: 8px; }
.funnel-leverage table { border-collapse: collapse; width: 100%; font-size: 13px; }
.funnel-leverage th { text-align: left; color: #52606d; font-weight: 600; border-bottom: 1px solid #cbd2d9; padding: 3px 6px; }
.funnel-leverage td { border-bottom: 1px solid #eef0f2; padding: 3px 6px; }
.funnel-leverage td.num { text-align: right; font-variant-numeric: tabular-nums; }
.funnel-leverage tr.top td { font-weight: 600; background: #fff8e6; }
.funnel-message { color: #3e4c59; font-size: 13px; }
.funnel-note { color: #52606d; font-size: 12px; }
.funnel-error { color: #b42318; font-size: 13px; font-weight: 600; }
.funnel-status { color: #52606d; font-size: 12px; }
.funnel-status.busy { color: #b45309; font-weight: 600; }
</style>
"""


def kpi_html(label: str, value: str, raw: float | None, note: str = "", tone: str = "") -> str:
    """One headline card; the number is also in ``data-value`` (for tests and scripts)."""
    data = "" if raw is None or not np.isfinite(raw) else f' data-value="{raw:g}"'
    return (f'<div class="kpi {tone}"><div class="kpi-label">{html.escape(label)}</div>'
            f'<div class="kpi-value"{data}>{html.escape(value)}</div>'
            f'<div class="kpi-note">{html.escape(note)}</div></div>')


def headline_cards(a: Answer) -> tuple[str, str, str]:
    """The three cards: leads needed, P(hit) with the planned leads, the spreadsheet plan."""
    q, plan = a.question, a.plan
    unit = "wins" if q.target_unit == "wins" else "revenue"
    what = f"{fmt_number(q.target)} {unit} by month {q.window}"
    if a.error or plan is None:
        return (kpi_html("New leads / month needed", "–", None, what),
                kpi_html("P(hit) with the planned leads", "–", None), kpi_html("Spreadsheet plan", "–", None))
    if plan.feasible:
        needed = kpi_html("New leads / month needed", f"{plan.leads:,}", plan.leads,
                          f"{what} with P ≥ {q.confidence:.0%} (P = {plan.probability:.2f})")
    else:
        needed = kpi_html("New leads / month needed", "not reachable", None, what, tone="bad")
    ok = a.p_hit >= q.confidence
    p_hit = kpi_html("P(hit) with the planned leads", f"{a.p_hit:.0%}", round(a.p_hit, 4),
                     f"{q.leads:,} new leads / month planned", tone="good" if ok else "bad")
    if plan.naive_leads is None:
        naive = kpi_html("Spreadsheet plan", "–", None, "no win rate")
    else:
        naive = kpi_html("Spreadsheet plan", f"{plan.naive_leads:,}", plan.naive_leads,
                         f"target ÷ win rate {plan.naive_rate:.1%}; hits with P = {plan.naive_probability:.2f}")
    return needed, p_hit, naive


def leverage_html(lev: pd.DataFrame | None, level: float, top: int = 8) -> str:
    """The where-to-act ranking as a table (every lever says whether it is relative or absolute)."""
    if lev is None or lev.empty:
        return ""
    rows = []
    for r in lev.head(top).to_dict("records"):
        cls = " class='top'" if r["rank"] == 1 else ""
        rows.append(f"<tr{cls}><td class='num'>{int(r['rank'])}</td><td>{html.escape(str(r['name']))} "
                    f"<span style='color:#7b8794'>({html.escape(str(r['stage']))})</span></td>"
                    f"<td>{html.escape(lever_text(r['lever']))}</td>"
                    f"<td class='num'>{r['extra_wins_mean']:+.1f}</td>"
                    f"<td class='num'>{r['extra_wins_lo']:+.1f} to {r['extra_wins_hi']:+.1f}</td>"
                    f"<td class='num'>{r['p_positive']:.0%}</td><td>{html.escape(str(r['focus']))}</td></tr>")
    return ("<table><thead><tr><th>#</th><th>stage</th><th>lever</th><th>extra wins / month</th>"
            f"<th>{level:.0%} interval</th><th>P(&gt;0)</th><th></th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")
