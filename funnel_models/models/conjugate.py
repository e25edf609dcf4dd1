"""Quick mode: an exact Dirichlet-multinomial posterior per funnel row, no MCMC.

Each row (ENTRY and every open stage) has a Dirichlet prior over its allowed
destinations; the posterior after observing transition counts is again Dirichlet, so
draws are exact and take milliseconds. It is the oracle the MCMC model must agree with on
pooled data.

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> d = demo_data(seed=3, months=12, leads_per_month=200)
>>> q = ConjugateFunnel(d.spec).fit(d.history)
>>> post = q.posterior_funnel(draws=500, seed=1)
>>> post.P.shape
(500, 8, 8)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ModelConfigError
from ..posterior import PosteriorFunnel
from ..data.spec import FunnelSpec
from .inputs import FunnelData, deal_value_draws, prepare
from .structure import FunnelStructure, build_structure

__all__ = ["ConjugateFunnel"]


class ConjugateFunnel:
    """Exact Dirichlet-multinomial posterior of each funnel row.

    Parameters
    ----------
    spec : FunnelSpec or mapping or path
    concentration : float
        Dirichlet prior concentration per allowed destination (1 = uniform).
    factors : sequence of str
        Segment columns kept so that :meth:`posterior_funnel` can answer per segment
        (each segment is then fitted on its own counts, without pooling).
    """

    def __init__(self, spec: FunnelSpec | Mapping | str, *, concentration: float = 1.0,
                 factors: Sequence[str] = ()) -> None:
        if concentration <= 0:
            raise ModelConfigError(f"concentration must be > 0, got {concentration}")
        self.spec = FunnelSpec.load(spec)
        self.concentration = float(concentration)
        self.factors = list(factors)
        self.structure: FunnelStructure | None = None
        self.data: FunnelData | None = None

    def fit(self, data: pd.DataFrame | FunnelData, *, since: str | pd.Timestamp | None = None,
            until: str | pd.Timestamp | None = None) -> "ConjugateFunnel":
        """Count transitions (optionally only months in ``[since, until]``); returns self."""
        fd = prepare(data, self.spec, factors=self.factors)
        tr = fd.transitions
        m = pd.to_datetime(tr["month"])
        if since is not None:
            tr = tr[m >= pd.Timestamp(since)]
            m = pd.to_datetime(tr["month"])
        if until is not None:
            tr = tr[m <= pd.Timestamp(until)]
        self.data = FunnelData(tr.reset_index(drop=True), fd.won_values)
        self.structure = build_structure(self.data.transitions, self.spec, factors=self.factors)
        return self

    def row_counts(self, segment: Mapping[str, str] | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
        """Summed counts per row (destinations, counts), for a segment or pooled."""
        if self.structure is None:
            raise ModelConfigError("fit the model first: ConjugateFunnel(spec).fit(data)")
        out = {}
        for row in self.structure.rows:
            mask = np.ones(row.n_obs, dtype=bool)
            for f, level in (segment or {}).items():
                if f not in self.structure.factors:
                    raise ModelConfigError(f"segment factor {f!r} was not kept; pass factors=[{f!r}] "
                                           "when creating the model")
                levels = self.structure.factors[f]
                if level not in levels:
                    raise ModelConfigError(f"unknown level {level!r} of {f!r}; levels are {levels}")
                mask &= row.levels[f] == levels.index(level)
            out[row.source] = (row.dest, row.counts[mask].sum(axis=0))
        return out

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, *, draws: int = 2000,
                         seed: int = 0) -> PosteriorFunnel:
        """Exact posterior draws as a :class:`PosteriorFunnel`."""
        rng = np.random.default_rng(seed)
        rows = {}
        for src, (dest, counts) in self.row_counts(segment).items():
            rows[src] = (dest, rng.dirichlet(counts + self.concentration, size=draws))
        assert self.data is not None
        value = deal_value_draws(self.data.won_values, draws, segment=segment, seed=seed + 1)
        label = ", ".join(f"{k}={v}" for k, v in (segment or {}).items()) or "all"
        return PosteriorFunnel.from_rows(self.spec.codes, rows, deal_value=value,
                                         names=self.spec.names, label=label)

    def row_posterior_mean(self, segment: Mapping[str, str] | None = None) -> dict[str, pd.Series]:
        """Exact posterior mean of each row's destination probabilities."""
        out = {}
        for src, (dest, counts) in self.row_counts(segment).items():
            a = counts + self.concentration
            out[src] = pd.Series(a / a.sum(), index=dest)
        return out
