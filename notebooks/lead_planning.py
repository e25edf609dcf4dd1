# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
source = "demo"
spec = None
mapping = {}
segment_filters = {}
start = None
end = None
cutoff = None
quick = False
factors = ["region", "channel"]
change_points = [{"stage": "DEMO", "month": "2025-01", "name": "sales training"}]
draws = 500
tune = 400
chains = 4
seed = 0
new_leads = None
interval_level = 0.8
summary_path = ""
title = "Lead planning"
target_wins = 100
period = "quarter"
periods = 2
confidence = 0.8
plan_by = "channel"
segment_targets = {}

# %%
# A thin template: every number, chart and sentence comes from funnel_models.reports.analysis.
# Run it with `funnel report [PARAMS.yaml]` or execute it here on its defaults (demo data).
from funnel_models.reports import analysis

ctx = analysis.prepare("lead_planning", dict(
    source=source, spec=spec, mapping=mapping, segment_filters=segment_filters, start=start, end=end,
    cutoff=cutoff, quick=quick, factors=factors, change_points=change_points, draws=draws, tune=tune,
    chains=chains, seed=seed, new_leads=new_leads, interval_level=interval_level, summary_path=summary_path,
    title=title, target_wins=target_wins, period=period, periods=periods, confidence=confidence,
    plan_by=plan_by, segment_targets=segment_targets), progress=False)
analysis.show(analysis.header_section(ctx))
banner = analysis.diagnostics_banner(ctx)
if banner is not None:
    analysis.show(banner)

# %%
analysis.show(analysis.plan_periods_section(ctx))

# %%
analysis.show(analysis.plan_segments_section(ctx))

# %%
analysis.show(analysis.diagnostics_section(ctx))

# %%
summary = analysis.write_summary(ctx)
