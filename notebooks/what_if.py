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
# The what-if dashboard. Served by `funnel dashboard [PARAMS.yaml]` (Voila, code hidden); also
# runs in JupyterLab and under papermill, where the last cell leaves a static HTML snapshot.
# It reads the same parameter files as `funnel report`: the top level (data, model, sampler)
# plus the `dashboard:` section; target, window and confidence default to `monthly_report:`.
params_path = None      # parameter file; None: $FUNNEL_PARAMS, else parameters/default.yaml
static_snapshot = True  # also display a static HTML snapshot (skipped under Voila)

# %%
import os

from funnel_models.dashboard import WhatIfDashboard

if os.environ.get("FUNNEL_WORKDIR"):  # relative paths mean what they mean to `funnel report` there
    os.chdir(os.environ["FUNNEL_WORKDIR"])
dash = WhatIfDashboard.from_params(params_path or os.environ.get("FUNNEL_PARAMS") or None)
dash

# %%
from IPython.display import HTML, display

if static_snapshot and not os.environ.get("VOILA_APP_PORT") and not os.environ.get("VOILA_KERNEL_ID"):
    display(HTML("<h3>Static snapshot (starting values)</h3>" + dash.snapshot_html()))
