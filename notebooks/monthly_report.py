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
# The parameters of a parameter file's top level and its `monthly_report` section
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
# monthly_report section
title = "Monthly funnel report"
target_wins = 240.0
window_months = 6
confidence = 0.8
horizon = 6
benchmarks = {"LEAD": 0.7, "MQL": 0.7, "SQL": 0.65, "DEMO": 0.65, "PROP": 0.65, "NEGO": 0.65}
warning_level = 0.9
flow_months = 12
charts_by_segment = False
summary_path = ""  # set by the runner: where write_summary(ctx) writes summary.json

# %%
# A thin template: every number, chart and sentence comes from funnel_models.reports.
# Run it with `funnel report --notebook monthly_report [PARAMS.yaml]` or here on its defaults.
from funnel_models.reports import analysis as fr

ctx = fr.open_report("monthly_report", globals())

# %%
fr.show(ctx, fr.funnel_section)

# %%
fr.show(ctx, fr.flows_section)

# %%
fr.show(ctx, fr.pipeline_section)

# %%
fr.show(ctx, fr.forecast_section)

# %%
fr.show(ctx, fr.leads_section)

# %%
fr.show(ctx, fr.bottleneck_section)

# %%
fr.show(ctx, fr.warning_section)

# %%
fr.show(ctx, fr.inflow_section)

# %%
fr.show(ctx, fr.conversion_section)

# %%
fr.show(ctx, fr.stall_section)

# %%
fr.show(ctx, fr.segment_section)

# %%
fr.show(ctx, fr.cohort_section)

# %%
fr.show(ctx, fr.time_to_convert_section)

# %%
fr.show(ctx, fr.model_section)

# %%
fr.show(ctx, fr.diagnostics_section)

# %%
summary = fr.write_summary(ctx)
