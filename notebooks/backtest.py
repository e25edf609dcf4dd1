# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Backtest: how good are the funnel's win forecasts?
#
# Rolling origin: at each monthly cut-off the model is fitted on the data known then and
# forecasts the next `horizon` months of wins from the open pipeline **and the number of
# new leads that actually arrived** in those months. Conditioning on the realised lead
# volume isolates the conversion model; a live forecast must also predict lead volume and
# will be less accurate. The Bayesian model is compared with three baselines (trailing
# 3-month and last-month conversion at the median lag, and a CRM weighted pipeline).

# %% tags=["parameters"]
source = "demo"          # demo | olist | a history file (then set spec)
spec = None              # funnel spec YAML for files
horizon = 3              # months forecast after each cut-off
n_windows = 6            # number of monthly cut-offs
step = 1                 # months between cut-offs
quick = True             # True: exact conjugate model (seconds); False: MCMC (nutpie)
factors = []             # segment factors, e.g. ["region"]
seed = 0

# %%
import warnings

import matplotlib.pyplot as plt
import pandas as pd

from funnel_models.evaluation.backtest import backtest
from funnel_models.workflow import load_data

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    data = load_data(source, spec=spec)
res = backtest(data, horizon=horizon, n_windows=n_windows, step=step, quick=quick,
               model_config={"factors": list(factors)} if factors else None, seed=seed)
print(f"{data.source}: cut-offs {res.frame['cutoff'].min():%Y-%m-%d} .. {res.frame['cutoff'].max():%Y-%m-%d}")

# %% [markdown]
# ## Scores per model
# MAE and MAPE of wins per month; CRPS scores the whole forecast distribution (for a point
# forecast it equals the MAE); coverage is the share of actual months inside the Bayesian
# model's central intervals.

# %%
res.metrics().round(3)

# %%
res.metrics(by="h").round(3)

# %% [markdown]
# ## Calibration and forecasts

# %%
res.plot_calibration()
plt.show()

# %%
for h in range(1, horizon + 1):
    res.plot_forecasts(h=h)
    plt.show()

# %% [markdown]
# ## Per-window timings (fit, compile, sampling) and the long table

# %%
res.windows.drop(columns=["signature"])

# %%
res.frame.round(1).head(20)
