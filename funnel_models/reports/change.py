"""Sections of the process-change notebook: before vs after, and the raw monthly history.

The change is a change point of the model at ``process_change.change_stage`` from
``change_month`` on (added to the model settings by
:func:`funnel_models.reports.context.prepare`): only that stage's rates may shift at the
change. The model's posterior of the month before and of the change month are compared.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import plots
from .context import Context
from .render import Section, month_label, pct

__all__ = ["change_section", "change_history_section"]


def _month(ctx: Context) -> pd.Timestamp:
    return pd.Timestamp(ctx.params.process_change.change_month).to_period("M").to_timestamp()


def change_section(ctx: Context) -> Section:
    """Conversion at the changed stage before vs after, P(improved) and extra wins."""
    from ..simulate import process_change_impact
    s = ctx.params.process_change
    stage, cm, H, lv = s.change_stage, _month(ctx), int(s.horizon), ctx.level
    before = ctx.posterior(month=cm - pd.DateOffset(months=1))
    after = ctx.posterior(month=cm)
    res = process_change_impact(before, after, stage, new_leads=ctx.leads(H), horizon=H, pipeline=ctx.pipeline,
                                start=ctx.cutoff_month)
    tab = res.table((lv,))
    tag = f"{100 * lv:g}".replace(".", "_")
    table = pd.DataFrame({"quantity": tab["quantity"], "mean": tab["mean"].round(3),
                          f"lo {lv:.0%}": tab[f"lo_{tag}"].round(3), f"hi {lv:.0%}": tab[f"hi_{tag}"].round(3),
                          "P(> 0)": tab["p_positive"].round(3)})
    extra = res.extra_wins_per_month
    name = s.change_name[:1].upper() + s.change_name[1:] if s.change_name else "The change"
    text = (f"{name} at {stage} from {month_label(cm)} moved its conversion from "
            f"{pct(res.rate_before.mean(), 1)} to {pct(res.rate_after.mean(), 1)} (P(improved) = "
            f"{res.p_improved:.2f}), worth about {extra.mean():.1f} extra wins per month.")
    method = f"change point in the model: only {stage}'s rates may shift at the change"
    fig = plots.change_chart(res.rate_before, res.rate_after, stage=stage, level=lv)
    ctx.summary["process_change"] = {"stage": stage, "month": month_label(cm), "name": s.change_name,
                                     "rate_before": float(res.rate_before.mean()),
                                     "rate_after": float(res.rate_after.mean()),
                                     "uplift_mean": float(res.uplift.mean()), "p_improved": float(res.p_improved),
                                     "extra_wins_per_month": float(extra.mean()), "method": method}
    return Section("Before vs after the change", text, fig, table,
                   note=f"Method: {method}. Source: {ctx.model_label}.")


def change_history_section(ctx: Context) -> Section:
    """Raw monthly conversion at the changed stage with the change month marked."""
    s = ctx.params.process_change
    stage, cm = s.change_stage, _month(ctx)
    t = ctx.transitions
    rows = t[t["from_stage"] == stage].groupby(["month", "to_stage"])["n"].sum().unstack(fill_value=0)
    stay, lost = rows.get(stage, 0), rows.get("LOST", 0)
    leave = rows.sum(axis=1) - stay
    with np.errstate(divide="ignore", invalid="ignore"):
        conv = ((leave - lost) / leave).where(leave > 0)
    monthly = pd.DataFrame({"month": pd.to_datetime(rows.index), "conversion": conv.to_numpy(),
                            "left": leave.to_numpy()})
    before, after = monthly[monthly["month"] < cm], monthly[monthly["month"] >= cm]

    def pooled(m: pd.DataFrame) -> float:
        return float((m["conversion"] * m["left"]).sum() / m["left"].sum()) if m["left"].sum() > 0 else float("nan")
    text = (f"Raw monthly conversion at {stage}: {pct(pooled(before), 1)} over {len(before)} months before "
            f"{month_label(cm)} and {pct(pooled(after), 1)} over {len(after)} months after.")
    fig = plots.change_history_chart(monthly, change_month=cm, stage=stage)
    return Section(f"Monthly conversion at {stage}", text, fig, None)
