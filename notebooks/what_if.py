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
# Served by `funnel dashboard [PARAMS.yaml]` (Voila, code hidden); also runs in JupyterLab
# and under papermill (`papermill notebooks/what_if.ipynb out.ipynb`), where the last cell
# leaves a static HTML snapshot of the outputs. The parameter file is `params_path`, else
# $FUNNEL_PARAMS (set by `funnel dashboard`), else the built-in defaults: the demo data
# with the quick (exact conjugate) model. See funnel_models/dashboard.py for the keys.
params_path = None      # what-if parameter YAML; None: $FUNNEL_PARAMS, else built-in defaults
draws = 1000            # posterior draws behind leads needed / P(hit)
static_snapshot = True  # also display a static HTML snapshot (skipped under Voila)

# %%
import os

from funnel_models.dashboard import WhatIfDashboard

_path = params_path or os.environ.get("FUNNEL_PARAMS") or None
dash = WhatIfDashboard.from_params(_path, base_dir=os.environ.get("FUNNEL_WORKDIR"), draws=draws)
dash

# %%
from IPython.display import HTML, display

if static_snapshot and not os.environ.get("VOILA_APP_PORT") and not os.environ.get("VOILA_KERNEL_ID"):
    display(HTML("<h3>Static snapshot (starting values)</h3>" + dash.snapshot_html()))
