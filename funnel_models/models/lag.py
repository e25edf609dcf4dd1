"""Distributed-lag model for aggregate monthly counts only (``month, stage, count``).

When a team keeps only a spreadsheet of how many leads *entered* each stage each month,
lead-level transitions are unknown. The lag model explains entries to stage ``k+1`` in
month ``t`` by earlier entries to stage ``k``::

    E[n_{k+1}(t)] = p_k * sum_{l=0}^{L-1} w_k(l) * n_k(t - l)
    n_{k+1}(t) ~ NegativeBinomial(mean, alpha_k)

with ``p_k`` the stage-to-stage conversion and ``w_k`` a lag distribution (Dirichlet).
The won count is the last "stage". Identifiability is much weaker than with lead-level
data (conversion and lag trade off against each other, and losses are never seen), so
:meth:`LagModel.fit` prints a note recommending lead-level data.

Its :meth:`LagModel.posterior_funnel` maps the result onto the Markov contract: a lead
spends on average ``1 + E[lag]`` months in stage ``k`` and then moves on with
probability ``p_k`` — an approximation, since the true lag need not be geometric.
"""
from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import FunnelDataError, ModelConfigError
from ..posterior import PosteriorFunnel
from ..data.spec import WON, FunnelSpec
from . import idata_access as acc
from .config import SamplerConfig, parse_config

__all__ = ["LagModel", "LEAD_LEVEL_NOTE"]

LEAD_LEVEL_NOTE = ("Note: only aggregate monthly counts were given, so the funnel is fitted with a "
                   "distributed-lag model. Conversion and time-in-stage are only weakly identified "
                   "from totals and losses are never observed; lead-level data (stage history or "
                   "monthly snapshots) identifies the rates far better.")


class LagModel:
    """Distributed-lag funnel model for aggregate counts.

    Parameters
    ----------
    spec : FunnelSpec, mapping or path
    max_lag : int
        Number of monthly lags ``L`` (0..L-1).
    sampler_config : SamplerConfig or mapping, optional
    """

    def __init__(self, spec: FunnelSpec | Mapping | str, *, max_lag: int = 4,
                 sampler_config: SamplerConfig | Mapping | None = None) -> None:
        if max_lag < 1:
            raise ModelConfigError(f"max_lag must be >= 1, got {max_lag}")
        self.spec = FunnelSpec.load(spec)
        self.max_lag = int(max_lag)
        self.sampler_config: SamplerConfig = parse_config(SamplerConfig, sampler_config, "sampler_config")  # type: ignore[assignment]
        self.idata: Any = None
        self.counts: np.ndarray | None = None
        self.months: list[pd.Timestamp] = []

    def _matrix(self, counts: pd.DataFrame) -> np.ndarray:
        need = {"month", "stage", "count"}
        if not need <= set(counts.columns):
            raise FunnelDataError(f"counts need columns {sorted(need)}, got {list(counts.columns)}")
        states = list(self.spec.codes) + [WON]
        c = counts.copy()
        c["stage"] = c["stage"].map(lambda s: WON if s in self.spec.won else s)
        c = c[c["stage"].isin(states)]
        wide = c.pivot_table(index="month", columns="stage", values="count", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=states, fill_value=0).sort_index()
        self.months = [pd.Timestamp(m) for m in wide.index]
        if len(wide) <= self.max_lag:
            raise FunnelDataError(f"counts cover {len(wide)} month(s); the lag model needs more than "
                                  f"max_lag={self.max_lag} months")
        return wide.to_numpy().astype(np.int64)

    def fit(self, counts: pd.DataFrame, *, progress: bool | None = None) -> "LagModel":
        """Fit on monthly entry counts per stage (``month, stage, count``); returns self."""
        import pymc as pm
        import pytensor.tensor as pt

        print(LEAD_LEVEL_NOTE, file=sys.stderr)
        n = self._matrix(counts)
        self.counts = n
        T, S = n.shape
        L = self.max_lag
        # lagged source counts: lagged[t, k, l] = n[t - l, k]
        lagged = np.zeros((T - L + 1, S - 1, L))
        for l in range(L):
            lagged[:, :, l] = n[L - 1 - l:T - l, :S - 1]
        target = n[L - 1:, 1:]
        with pm.Model(coords={"move": list(self.spec.codes), "lag": list(range(L))}):
            p = pm.Beta("conversion", 2.0, 2.0, dims="move")
            w = pm.Dirichlet("lag_weights", np.ones(L), dims=("move", "lag"))
            alpha = pm.HalfNormal("alpha", 50.0, dims="move")
            mu = p[None, :] * (pt.as_tensor(lagged) * w[None, :, :]).sum(-1) + 1e-3
            pm.NegativeBinomial("entries", mu=mu, alpha=alpha[None, :], observed=target)
            sc = self.sampler_config
            show = sc.progress if progress is None else progress
            self.idata = pm.sample(draws=sc.draws, tune=sc.tune, chains=sc.chains, cores=min(2, sc.chains),
                                   random_seed=sc.seed, progressbar=show, nuts_sampler=sc.sampler,
                                   compute_convergence_checks=False)
        return self

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, *, seed: int = 0) -> PosteriorFunnel:
        """Markov approximation of the fitted lag model (see the module docstring)."""
        if self.idata is None:
            raise ModelConfigError("fit the lag model first")
        if segment:
            raise ModelConfigError("the lag model is fitted on totals; segments need lead-level data")
        p = acc.draws(self.idata, "conversion")
        w = acc.draws(self.idata, "lag_weights")
        mean_lag = (w * np.arange(self.max_lag)[None, None, :]).sum(-1)
        stay = 1.0 - 1.0 / (1.0 + mean_lag)
        K = self.spec.n_stages
        D = p.shape[0]
        P = np.zeros((D, K + 2, K + 2))
        for k in range(K):
            P[:, k, k] = stay[:, k]
            P[:, k, k + 1] = (1 - stay[:, k]) * p[:, k]
            P[:, k, K + 1] = (1 - stay[:, k]) * (1 - p[:, k])
        P[:, K, K] = P[:, K + 1, K + 1] = 1.0
        entry = np.zeros((D, K + 2))
        entry[:, 0] = 1.0
        return PosteriorFunnel(stages=self.spec.codes, P=P, entry=entry, names=self.spec.names,
                               label="lag model", meta={"note": LEAD_LEVEL_NOTE})

    def conversion_table(self, level: float = 0.9) -> pd.DataFrame:
        """Posterior of each stage's conversion and mean lag (months)."""
        p = acc.draws(self.idata, "conversion")
        w = acc.draws(self.idata, "lag_weights")
        lag = (w * np.arange(self.max_lag)[None, None, :]).sum(-1)
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        return pd.DataFrame({"stage": list(self.spec.codes), "conversion_mean": p.mean(0),
                             "conversion_lo": np.quantile(p, lo, 0), "conversion_hi": np.quantile(p, hi, 0),
                             "mean_lag_months": lag.mean(0)})
