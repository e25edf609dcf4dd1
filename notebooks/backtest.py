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
# The parameters of a parameter file's top level and its `backtest` section
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
# backtest section
title = "Backtest"
horizon = 3
n_windows = 6
step = 1
baselines = ["trailing3", "last_month", "weighted_pipeline"]
stages = False
min_train_months = 6
output = None
summary_path = ""  # set by the runner: where write_summary(ctx) writes summary.json

# %%
# A thin template: every number, chart and sentence comes from funnel_models.reports.
# Run it with `funnel report --notebook backtest [PARAMS.yaml]` or here on its defaults.
from funnel_models.reports import analysis as fr

ctx = fr.open_report("backtest", globals())

# %%
result = fr.run_backtest(ctx)

# %%
fr.show(ctx, fr.scores_section)

# %%
fr.show(ctx, fr.calibration_section)

# %%
fr.show(ctx, fr.forecasts_section)

# %%
fr.show(ctx, fr.windows_section)

# %%
summary = fr.write_summary(ctx)
