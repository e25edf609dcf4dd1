"""Choosing between model variants by expected predictive accuracy (PSIS-LOO).

Every variant of the Markov model (memoryless; time in stage; month effects; both) is
fitted on the *same* stacked observations (one per row, segment cell, month and age
bucket), so their pointwise log-likelihoods are comparable. The expected log predictive
density (ELPD) is estimated with Pareto-smoothed importance-sampling leave-one-out
(``arviz.loo``); an observation here is one cell of transition counts.

Rule (documented in the report): every optional component is hierarchical, with a scale
that can shrink to zero (time in stage to the memoryless chain, month effects to none), so
a richer variant contains the simpler ones. Among the variants the data cannot tell from
the best the richest is taken: when the data cannot tell them apart, keeping the component
costs a little width, leaving it out can make the intervals overconfident (month effects
with a few months of history are the common case). A variant counts as clearly worse only
when its ELPD is more than two standard errors *and* more than :data:`SMALL_DIFF` (4) below
the best: below 4 the two predict about equally well and the standard error of the
difference is itself unreliable, most of all with few observations (Sivula, Magnusson,
Matamoros & Vehtari 2020, "Uncertainty in Bayesian leave-one-out cross-validation based
model comparison"; the LOO cross-validation FAQ gives the same two thresholds). So a
component is dropped only when the simpler variant predicts clearly better. The chosen
variant and every ELPD difference are printed by ``funnel fit`` and the report.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"variant": ["memoryless", "time in stage"], "size": [0, 1],
...                       "elpd": [-1000.0, -900.0], "se": [20.0, 20.0]})
>>> choose(table.assign(elpd_diff=[100.0, 0.0], dse=[15.0, 0.0]))
'time in stage'
>>> choose(table.assign(elpd=[-900.0, -903.0], elpd_diff=[0.0, 3.0], dse=[0.0, 2.0]))
'time in stage'
>>> choose(table.assign(elpd=[-900.0, -910.0], elpd_diff=[0.0, 10.0], dse=[0.0, 2.0]))
'memoryless'
>>> choose(table.assign(elpd=[-900.0, -901.0], elpd_diff=[0.0, 1.0], dse=[0.0, 0.4]))  # within 4: a tie
'time in stage'
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .idata_access import quiet_import

__all__ = ["loo_table", "choose", "RULE", "SMALL_DIFF"]

#: ELPD differences up to this size are ties, whatever their standard error.
SMALL_DIFF = 4.0

#: The rule in one sentence (for reports).
RULE = ("the richest variant whose ELPD (PSIS-LOO) is within two standard errors or 4 of the best; "
        "a component is dropped only when the simpler variant predicts clearly better")


def loo_table(loglik: Mapping[str, np.ndarray], sizes: Mapping[str, int], chains: int) -> pd.DataFrame:
    """ELPD of each variant and the differences to the best.

    Parameters
    ----------
    loglik : mapping variant label -> ndarray (draws, n_obs)
        Pointwise log-likelihood (chains stacked along the draws).
    sizes : mapping variant label -> int
        Number of optional components (for the simplicity preference).
    chains : int
        Number of chains the draws come from (for ArviZ's diagnostics).

    Returns
    -------
    DataFrame
        ``variant, size, elpd, se, p_loo, elpd_diff, dse, pareto_k_bad`` sorted by ELPD
        (best first); ``pareto_k_bad`` counts observations with Pareto k > 0.7.
    """
    az = quiet_import("arviz")
    import xarray as xr

    loos, rows = {}, []
    for name, ll in loglik.items():
        D, n = ll.shape
        da = xr.DataArray(ll.reshape(chains, D // chains, n), dims=("chain", "draw", "obs"))
        idata = az.InferenceData(log_likelihood=xr.Dataset({"y": da}),
                                 posterior=xr.Dataset({"x": da.isel(obs=0)}))
        if np.all(np.ptp(ll, axis=0) == 0):        # no parameters: leaving one out changes nothing
            pw = ll[0]
            loos[name] = pw
            rows.append({"variant": name, "size": int(sizes[name]), "elpd": float(pw.sum()),
                         "se": float(np.sqrt(pw.size * pw.var())), "p_loo": 0.0, "pareto_k_bad": 0})
            continue
        with np.errstate(all="ignore"):
            loo = az.loo(idata, pointwise=True)
        loos[name] = np.asarray(loo.loo_i)
        rows.append({"variant": name, "size": int(sizes[name]), "elpd": float(loo.elpd_loo),
                     "se": float(loo.se), "p_loo": float(loo.p_loo),
                     "pareto_k_bad": int((np.asarray(loo.pareto_k) > 0.7).sum())})
    out = pd.DataFrame(rows).sort_values("elpd", ascending=False).reset_index(drop=True)
    best = out["variant"].iloc[0]
    best_pw = loos[best]
    diffs, dses = [], []
    for name in out["variant"]:
        d = best_pw - loos[name]
        diffs.append(float(d.sum()))
        dses.append(float(np.sqrt(d.size * d.var())) if name != best else 0.0)
    out["elpd_diff"] = diffs
    out["dse"] = dses
    return out


def choose(table: pd.DataFrame) -> Any:
    """The variant the rule picks from a :func:`loo_table`."""
    ok = table[table["elpd_diff"] <= np.maximum(2.0 * table["dse"], SMALL_DIFF)]
    return ok.sort_values(["size", "elpd"], ascending=[False, False])["variant"].iloc[0]
