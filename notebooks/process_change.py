# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
change_points = []
draws = 500
tune = 400
chains = 4
seed = 0
new_leads = None
interval_level = 0.8
summary_path = ""
title = "Process change review"
change_stage = "DEMO"
change_month = "2025-01"
change_name = "sales training"
horizon = 6

# %%
# A thin template: every number, chart and sentence comes from funnel_models.reports.analysis.
# Run it with `funnel report [PARAMS.yaml]` or execute it here on its defaults (demo data).
from funnel_models.reports import analysis

ctx = analysis.open_report("process_change", globals())

# %%
analysis.show(analysis.change_section(ctx))

# %%
analysis.show(analysis.change_history_section(ctx))

# %%
analysis.show(analysis.diagnostics_section(ctx))

# %%
summary = analysis.write_summary(ctx)
