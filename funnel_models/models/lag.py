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

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data.spec import WON, FunnelSpec
from ..errors import FunnelDataError, FunnelWarning, ModelConfigError
from ..intervals import central_interval
from ..posterior import PosteriorFunnel
from . import idata_access as acc
from .base import BaseFunnelModel, Diagnostics, check_diagnostics
from .config import ModelConfig, SamplerConfig, parse_config
from .sampling import data_container, sample_compiled
from .idata_access import quiet_import

__all__ = ["LagModel", "LEAD_LEVEL_NOTE"]

LEAD_LEVEL_NOTE = ("Note: only aggregate monthly counts were given, so the funnel is fitted with a "
                   "distributed-lag model. Conversion and time-in-stage are only weakly identified "
                   "from totals and losses are never observed; lead-level data (stage history or "
                   "monthly snapshots) identifies the rates far better.")


class LagModel(BaseFunnelModel):
    """Distributed-lag funnel model for aggregate counts.

    Parameters
    ----------
    spec : FunnelSpec, mapping or path
    model_config : ModelConfig or mapping, optional
        Only the defaults are honoured: segment factors and change points need lead-level
        data and are refused.
    sampler_config : SamplerConfig or mapping, optional
    max_lag : int
        Number of monthly lags ``L`` (0..L-1).
    """

    name = "lag"
    description = "distributed-lag model of aggregate monthly counts (weaker than lead-level data)"

    def __init__(self, spec: FunnelSpec | Mapping | str, model_config: ModelConfig | Mapping | None = None,
                 sampler_config: SamplerConfig | Mapping | None = None, *, max_lag: int = 4,
                 cache_dir: Any = None) -> None:
        del cache_dir
        if max_lag < 1:
            raise ModelConfigError(f"max_lag must be >= 1, got {max_lag}")
        self.spec = FunnelSpec.load(spec)
        mc: ModelConfig = parse_config(ModelConfig, model_config, "model_config")  # type: ignore[assignment]
        if mc.factors or mc.change_points:
            raise ModelConfigError("the lag model is fitted on totals: segment factors and change points need "
                                   "lead-level data (stage history or monthly snapshots); remove them")
        self.model_config = mc
        self.max_lag = int(max_lag)
        self.sampler_config: SamplerConfig = parse_config(SamplerConfig, sampler_config, "sampler_config")  # type: ignore[assignment]
        self.idata: Any = None
        self.counts: np.ndarray | None = None
        self.months: list[pd.Timestamp] = []
        self.timings: dict[str, float] = {}

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

    def fit(self, data: Any, *, progress: bool = False) -> "LagModel":
        """Fit on monthly entry counts per stage (``month, stage, count``, or a loaded
        counts source); returns self."""
        pm = quiet_import("pymc")
        counts = getattr(data, "counts", data)
        print(LEAD_LEVEL_NOTE, file=sys.stderr)
        n = self._matrix(counts)
        self.counts = n
        T, S = n.shape
        L = self.max_lag
        lagged = np.zeros((T - L + 1, S - 1, L))            # lagged[t, k, l] = n[t - l, k]
        for lag in range(L):
            lagged[:, :, lag] = n[L - 1 - lag:T - lag, :S - 1]

        def build(static: bool) -> Any:
            with pm.Model(coords={"move": list(self.spec.codes), "lag": list(range(L))}) as model:
                src = data_container(pm, "lagged", lagged, static)
                obs = data_container(pm, "entries_observed", n[L - 1:, 1:], static)
                p = pm.Beta("conversion", 2.0, 2.0, dims="move")
                w = pm.Dirichlet("lag_weights", np.ones(L), dims=("move", "lag"))
                alpha = pm.HalfNormal("alpha", 50.0, dims="move")
                mu = p[None, :] * (src * w[None, :, :]).sum(-1) + 1e-3
                pm.Potential("entries", pm.logp(pm.NegativeBinomial.dist(mu=mu, alpha=alpha[None, :]), obs).sum())
            return model
        key = f"lag;{','.join(self.spec.codes)};L{L};T{T}"
        self.idata, self.timings = sample_compiled(key, build, {"lagged": lagged, "entries_observed": n[L - 1:, 1:]},
                                                   self.sampler_config, progress)
        return self

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, month: Any = None, *,
                         draws: int | None = None, seed: int = 0) -> PosteriorFunnel:
        """Markov approximation of the fitted lag model (see the module docstring)."""
        del month
        if self.idata is None:
            raise ModelConfigError("fit the lag model first")
        if segment:
            raise ModelConfigError("the lag model is fitted on totals; segments need lead-level data")
        p = acc.draws(self.idata, "conversion")
        w = acc.draws(self.idata, "lag_weights")
        if draws is not None and draws < p.shape[0]:
            idx = np.sort(np.random.default_rng(seed).choice(p.shape[0], draws, replace=False))
            p, w = p[idx], w[idx]
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
        return PosteriorFunnel.from_matrix(self.spec.codes, P, entry, names=self.spec.names, label="lag model",
                                           meta={"note": LEAD_LEVEL_NOTE, "model": "lag"})

    def segments(self) -> dict[str, list[str]]:
        """No segments: the lag model is fitted on totals."""
        return {}

    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """Convergence diagnostics of the lag model's sampler."""
        if self.idata is None:
            raise ModelConfigError("fit the lag model first")
        diag = check_diagnostics(self._sampler_stats(self.idata), (LEAD_LEVEL_NOTE,))
        if warn and not diag.ok:
            warnings.warn(diag.message, FunnelWarning, stacklevel=2)
        return diag

    def pipeline(self, data: Any) -> pd.DataFrame:
        """The open pipeline implied by the recent entries (counts data have no leads):
        entries of the last months still expected in each stage, as stage/count rows."""
        post = self.posterior_funnel(draws=200)
        assert self.counts is not None
        stay = post.rates[:, np.arange(self.spec.n_stages), 0, np.arange(self.spec.n_stages)].mean(0)
        recent = self.counts[-self.max_lag:, :-1]            # (L, K): entries by month, oldest first
        age = np.arange(recent.shape[0])[::-1]
        est = (recent * stay[None, :] ** age[:, None]).sum(0)
        return pd.DataFrame({"stage": list(self.spec.codes), "count": np.rint(est).astype(np.int64)})

    def save(self, path: str | Path) -> Path:
        """Write the fit to NetCDF."""
        if self.idata is None or self.counts is None:
            raise ModelConfigError("fit the lag model first")
        attrs = {"funnel_config": json.dumps({"spec": self.spec.to_dict(), "max_lag": self.max_lag,
                                              "sampler_config": self.sampler_config.model_dump()})}
        frame = pd.DataFrame(self.counts, columns=[*self.spec.codes, WON]).assign(month=self.months)
        acc.save(self.idata, Path(path), attrs, {"counts": frame})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LagModel":
        """Read a lag-model fit written by :meth:`save`."""
        idata, attrs, tables = acc.load(Path(path))
        cfg = json.loads(attrs["funnel_config"])
        m = cls(cfg["spec"], None, cfg["sampler_config"], max_lag=cfg["max_lag"])
        frame = tables["counts"]
        m.months = [pd.Timestamp(x) for x in frame["month"]]
        m.counts = frame[[*m.spec.codes, WON]].to_numpy(np.int64)
        m.idata = idata
        return m

    def conversion_table(self, level: float = 0.9) -> pd.DataFrame:
        """Posterior of each stage's conversion and mean lag (months)."""
        p = acc.draws(self.idata, "conversion")
        w = acc.draws(self.idata, "lag_weights")
        lag = (w * np.arange(self.max_lag)[None, None, :]).sum(-1)
        lo, hi = central_interval(p, level)
        return pd.DataFrame({"stage": list(self.spec.codes), "conversion_mean": p.mean(0),
                             "conversion_lo": lo, "conversion_hi": hi, "mean_lag_months": lag.mean(0)})
