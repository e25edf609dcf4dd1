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
# The parameters of a parameter file's top level and its `lead_planning` section
# (README, 'Parameter files'); `funnel report` passes every one of them. These defaults are
# parameters/default.yaml (the bundled demo), so the notebook also runs as it is.
source = "demo"
spec = None
mapping = {}
segment_filters = {}
start = None
end = None
cutoff = None
factors = ["region", "channel"]
model = "auto"
model_settings = {"change_points": [{"stage": "DEMO", "month": "2025-01", "name": "sales training"}]}
sampler = {}
seed = 0
new_leads = None
interval_level = 0.8
# lead_planning section
title = "Lead planning"
target_wins = 130.0
period = "quarter"
periods = 2
confidence = 0.8
plan_by = "channel"
segment_targets = {}
summary_path = ""  # set by the runner: where write_summary(ctx) writes summary.json

# %%
# A thin template: every number, chart and sentence comes from funnel_models.reports.
# Run it with `funnel report --notebook lead_planning [PARAMS.yaml]` or here on its defaults.
from funnel_models.reports import analysis as fr

ctx = fr.open_report("lead_planning", globals())

# %%
fr.show(ctx, fr.plan_periods_section)

# %%
fr.show(ctx, fr.plan_segments_section)

# %%
fr.show(ctx, fr.model_section)

# %%
fr.show(ctx, fr.diagnostics_section)

# %%
summary = fr.write_summary(ctx)
