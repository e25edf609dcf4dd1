"""``summary.json``: the key numbers of a report, and the paragraph ``funnel report`` prints.

The notebook's last cell calls :func:`write_summary`; the runner passes the path as the
``summary_path`` parameter (into its temporary folder) and then adds a ``run`` block.
:func:`plain_summary` turns a summary into one plain-language paragraph.

Examples
--------
>>> plain_summary({"data": {"source": "demo", "cutoff": "2025-12-31", "leads": 10, "model": "conjugate"},
...                "diagnostics": {"ok": False, "message": "WARNING: not converged"}})
'report on demo data up to 2025-12-31 (10 leads, conjugate model). WARNING: not converged'
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..charts.headline import lever_text, months_to_win_text

__all__ = ["write_summary", "plain_summary", "json_default"]


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays, dates and anything else (as text)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, _dt.date)):
        return str(o)
    return str(o)


def _finite(o: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def write_summary(ctx: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``ctx.summary`` (with the notes) as JSON to ``path`` (default the
    ``summary_path`` the runner passed); nothing is written when the path is empty.

    Returns the summary.
    """
    target = str(path if path is not None else ctx.summary_path)
    out = dict(ctx.summary)
    out.setdefault("notes", [ctx.clean_note(n) for n in ctx.notes])
    text = json.dumps(_finite(json.loads(json.dumps(out, default=json_default))), indent=2)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(target).with_name(Path(target).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return out


def _plan_sentence(ln: Mapping[str, Any]) -> str:
    if not ln.get("feasible"):
        return f"The target is out of reach: {ln['message']}."
    out = (f"To win {ln['target_wins']:g} deals in the next {ln['window_months']} months with "
           f"{ln['confidence']:.0%} confidence you need {ln['leads']:,} new leads per month (P(hit) "
           f"{ln['probability']:.2f}); the naive spreadsheet answer, {ln['naive_leads']:,}, would hit it with P "
           f"{ln['naive_probability']:.2f}.")
    if ln.get("baseline_probability") is not None:
        out += f" With the expected inflow P(hit) is {ln['baseline_probability']:.2f}."
    return out


def plain_summary(summary: Mapping[str, Any], html_path: Path | None = None) -> str:
    """One plain-language paragraph from a report's summary.json."""
    d = summary.get("data", {})
    parts = [f"{summary.get('run', {}).get('report', summary.get('notebook', 'report'))} on {d.get('source')} "
             f"data up to {d.get('cutoff')} ({d.get('leads', 0):,} leads, {d.get('model')} model)."]
    ol = summary.get("outlook")
    if ol:
        w = ol["new_lead_win_rate"]
        parts.append(f"A new lead is won with probability {w['mean']:.1%}; a won lead is typically won "
                     f"{months_to_win_text(ol['median_months_to_win'])}.")
    if summary.get("leads_needed"):
        parts.append(_plan_sentence(summary["leads_needed"]))
    fc = summary.get("forecast")
    if fc:
        f0, tot = fc[0], summary.get("forecast_total", {})
        parts.append(f"Expected wins in {f0['month']}: {f0['wins_mean']:.1f} (80%: {f0['wins_lo_80']:.0f}-"
                     f"{f0['wins_hi_80']:.0f})" + (f"; {tot['wins_mean']:.0f} over {len(fc)} months." if tot else "."))
    bn = summary.get("bottleneck")
    if bn:
        parts.append(f"Focus here: {lever_text(bn['lever'])} at {bn['stage']} (+{bn['extra_wins_mean']:.1f} "
                     "wins/month).")
    ew = summary.get("early_warning")
    if ew and ew.get("flagged"):
        parts.append("Early warning at " + ", ".join(f"{k} ({v})" for k, v in ew["flags"].items()) + ".")
    pc = summary.get("process_change")
    if pc:
        parts.append(f"{pc['name'] or 'The change'} at {pc['stage']} moved conversion from "
                     f"{100 * pc['rate_before']:.1f}% to {100 * pc['rate_after']:.1f}% (P(improved) "
                     f"{pc['p_improved']:.2f}), about {pc['extra_wins_per_month']:.1f} extra wins per month.")
    pp = summary.get("plan_periods")
    if pp:
        parts.append("Leads per month needed: " + ", ".join(f"{r['period']} {r['leads per month']}" for r in pp) + ".")
    bt = summary.get("backtest")
    if bt:
        parts.append(bt.get("headline", ""))
    dg = summary.get("diagnostics")
    if dg:
        msg = str(dg.get("message", ""))
        parts.append(msg if dg.get("ok") or msg.upper().startswith("WARNING") else "WARNING: " + msg)
    if html_path is not None:
        parts.append(f"Report: {html_path}")
    return " ".join(p for p in parts if p)
