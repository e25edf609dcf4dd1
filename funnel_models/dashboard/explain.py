"""The words next to the numbers: why the answer is what it is, and how to read the page.

:func:`headline_facts` gathers the four facts a sales manager needs beside "leads
needed" (today's volume, the pipeline's share of the target, the months from lead to
win, the spreadsheet's answer and why it differs); :func:`explanation_html` says them in
sentences. Every number comes from the :class:`~funnel_models.dashboard.engine.Answer`.
"""
from __future__ import annotations

import html

from ..charts.headline import HeadlineFacts, headline_items, lever_text
from .engine import Answer

__all__ = ["HeadlineFacts", "headline_facts", "explanation_html", "HOW_TO_READ", "lever_text"]


def headline_facts(a: Answer, mean_deal_value: float = float("nan")) -> HeadlineFacts:
    """The facts of an answer; a revenue target is turned into wins with ``mean_deal_value``."""
    plan, q = a.plan, a.question
    target_wins = q.target / mean_deal_value if q.target_unit == "revenue" else q.target
    needed = plan.leads if plan.feasible else None
    share = plan.expected_pipeline_wins / target_wins if target_wins > 0 else float("nan")
    ratio = needed / a.volume if needed is not None and a.volume > 0 else float("nan")
    return HeadlineFacts(volume=a.volume, needed=needed, ratio_to_volume=ratio, target_wins=float(target_wins),
                         pipeline_leads=a.pipeline_leads, pipeline_wins=float(plan.expected_pipeline_wins),
                         pipeline_share=float(share), pipeline_probability=float(plan.pipeline_probability),
                         cycle_months=a.cycle_months, min_months=plan.min_months_to_win,
                         naive_leads=plan.naive_leads, naive_rate=float(plan.naive_rate),
                         naive_probability=float(plan.naive_probability), window=q.window)


def explanation_html(a: Answer, mean_deal_value: float = float("nan")) -> str:
    """Four short sentences next to the headline (HTML list)."""
    items = headline_items(headline_facts(a, mean_deal_value), strong=lambda s: f"<b>{s}</b>")
    return "<ul class='funnel-why'>" + "".join(f"<li><b>{k}:</b> {v}</li>" for k, v in items) + "</ul>"


HOW_TO_READ = """
<details class="funnel-help"><summary>How to read this</summary>
<ul>
<li><b>New leads / month needed</b>: the fewest new leads entering the funnel every month, from next month to
the end of the window, for the wins (or revenue) in that window to reach the target with the required
probability. It counts the open pipeline, the months deals take and chance.</li>
<li><b>P(hit) with the planned leads</b>: the probability of reaching the target with the leads you plan
(the red dot on the curve). Green when it reaches the required probability.</li>
<li><b>Spreadsheet plan</b>: target ÷ win rate, spread over the window: what a spreadsheet gives. Its P(hit)
shows how often that plan would really hit.</li>
<li><b>The curve</b>: P(hit) for every number of new leads per month. The dashed line is the required
probability; where the curve crosses it is the answer. The dotted line is today's volume.</li>
<li><b>The fan chart</b>: cumulative wins month by month with the planned leads; the bands hold the middle 50%,
80% and 95% of the simulated futures.</li>
<li><b>Levers</b>: planned leads and the target are absolute numbers; the stage sliders multiply a stage's
conversion or its months in stage (relative: 1.10 = 10% more than today). In <i>Where to act</i>,
conversion levers are relative (+10% of the stage's conversion), stall levers absolute (one month less).</li>
<li><b>Segments</b>: choosing a segment uses its own model answers and open pipeline, scales the planned leads to
its recent share of new leads and offers its share of the target.</li>
</ul></details>
"""


def escape(text: str) -> str:
    """HTML-escape ``text`` (for messages built from user data)."""
    return html.escape(str(text))
