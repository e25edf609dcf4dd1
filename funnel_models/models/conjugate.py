"""Quick mode: an exact Dirichlet-multinomial posterior per funnel row, no MCMC.

Each row (``ENTRY`` and every open stage), and with time in stage each age bucket of it,
has a Dirichlet prior over its allowed destinations (a later age bucket's centred on the
younger bucket's posterior, see :func:`bucket_priors`); the posterior after observing
transition counts is again Dirichlet, so draws are exact and take milliseconds. Segments
are fitted on their own counts (no pooling); change points split a row's counts at the
change month. It is the oracle the MCMC model must agree with on pooled data.

Settings it cannot honour (month effects, seasonality, a random walk) are refused with a
:class:`~funnel_models.errors.ModelConfigError` rather than ignored. ``time_in_stage:
auto`` is settled exactly, by the Dirichlet-multinomial marginal likelihood of the pooled
versus the bucketed rows (a Bayes factor).

Examples
--------
>>> from funnel_models.datasets.demo import demo_data
>>> d = demo_data(seed=3, months=12, leads_per_month=200)
>>> q = ConjugateFunnel(d.spec, {"time_in_stage": "off"}).fit(d.history)
>>> post = q.posterior_funnel(draws=500, seed=1)
>>> post.rates.shape
(500, 6, 1, 8)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ..data.spec import ENTRY, FunnelSpec
from ..errors import ModelConfigError
from ..posterior import PosteriorFunnel
from .base import BaseFunnelModel, Diagnostics
from .config import ModelConfig, parse_config
from .inputs import FunnelData, deal_value_draws, prepare
from .structure import ChangePoint, Design, build_design, bucket_of, choose_cold_after

__all__ = ["ConjugateFunnel", "bucket_priors"]

#: Posterior draws when ``posterior_funnel`` is not told how many.
DEFAULT_DRAWS = 2000


def bucket_priors(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Dirichlet prior of every age bucket of one row, (buckets, n_dest).

    The youngest bucket's is symmetric (``alpha`` per destination). Each later bucket's
    has the same total weight (``alpha`` x destinations), centred on the posterior mean of
    the bucket before it: a bucket the data say little about keeps the rates of the
    younger one, as the MCMC model's random walk over buckets shrinks toward the
    memoryless chain. (A symmetric prior on every bucket gave Olist's 12+ month bucket, which
    no lead had reached in the months with recorded wins, a 50% monthly win rate.)

    Examples
    --------
    >>> bucket_priors(np.array([[90.0, 10.0], [0.0, 0.0]]), 1.0).round(3)
    array([[1.   , 1.   ],
           [1.784, 0.216]])
    """
    counts = np.asarray(counts, dtype=float)
    n_dest = counts.shape[-1]
    out = np.empty(counts.shape)
    prior = np.full(n_dest, float(alpha))
    for b in range(counts.shape[0]):
        out[b] = prior
        post = counts[b] + prior
        prior = alpha * n_dest * post / post.sum()
    return out


def _log_marginal(counts: np.ndarray, alpha: float) -> float:
    """Dirichlet-multinomial log marginal likelihood of one row's age buckets (without the
    coefficient), each bucket under its :func:`bucket_priors` prior: one bucket after
    another, the evidence of the bucketed row given the younger buckets."""
    a = bucket_priors(counts, alpha)
    return float((gammaln(a.sum(-1)) - gammaln(counts.sum(-1) + a.sum(-1))
                  + (gammaln(counts + a) - gammaln(a)).sum(-1)).sum())


class ConjugateFunnel(BaseFunnelModel):
    """Exact Dirichlet-multinomial posterior of each funnel row (and age bucket).

    Parameters
    ----------
    spec : FunnelSpec or mapping or path
    model_config : ModelConfig or mapping, optional
        ``factors``, ``time_in_stage``, ``age_buckets``, ``cold_after`` and
        ``change_points`` are honoured; month effects, seasonality and ``time_varying``
        are refused.
    concentration : float
        Dirichlet prior concentration per allowed destination (1 = uniform).
    """

    name = "conjugate"
    description = "quick mode: exact conjugate posterior per stage (no MCMC, no pooling of segments)"

    def __init__(self, spec: FunnelSpec | Mapping | str, model_config: ModelConfig | Mapping | None = None,
                 sampler_config: Any = None, *, concentration: float = 1.0, cache_dir: Any = None) -> None:
        del sampler_config, cache_dir          # exact: nothing to sample, nothing worth caching
        if not np.isfinite(concentration) or concentration <= 0:
            raise ModelConfigError(f"concentration must be > 0, got {concentration}")
        self.spec = FunnelSpec.load(spec)
        self.model_config: ModelConfig = parse_config(ModelConfig, model_config, "model_config")  # type: ignore[assignment]
        mc = self.model_config
        refused = [k for k, bad in (("month_effects", mc.month_effects == "on"),
                                    ("seasonality", mc.seasonality != "none"),
                                    ("time_varying", mc.time_varying)) if bad]
        if refused:
            raise ModelConfigError(f"quick mode (model: conjugate) cannot honour {refused}; use model: markov "
                                   "or remove them")
        for cp in mc.change_points:
            if cp.stage not in self.spec.codes:
                raise ModelConfigError(f"change_points: stage {cp.stage!r} is not an open stage; stages are "
                                       f"{list(self.spec.codes)}")
        self.concentration = float(concentration)
        self.design: Design | None = None
        self.data: FunnelData | None = None
        self.cold_after: int | None = None
        self.time_in_stage = False
        self.notes: list[str] = []

    def fit(self, data: Any, *, progress: bool = False) -> "ConjugateFunnel":
        """Count transitions; returns self."""
        del progress
        mc = self.model_config
        self.data = fd = prepare(data, self.spec, factors=mc.factors)
        self.notes = []
        if fd.recorded_from is not None:
            self.notes.append(f"outcomes (wins, losses) are recorded only from {fd.recorded_from:%Y-%m}; earlier "
                              "months are left out of the fit")
        tr = fd.transitions if "age" in fd.transitions.columns else fd.transitions.assign(age=0)
        self.cold_after = mc.cold_after if isinstance(mc.cold_after, int) else choose_cold_after(tr, mc.age_buckets)
        edges = [e for e in mc.age_buckets if e <= self.cold_after]
        cps = [ChangePoint(c.stage, pd.Timestamp(c.month), c.name) for c in mc.change_points]

        def design(age_edges: list[int]) -> Design:
            return build_design(tr, self.spec, factors=mc.factors, change_points=cps, age_edges=age_edges)
        pooled = design([0])
        if mc.time_in_stage == "off" or len(edges) == 1:
            self.design, self.time_in_stage = pooled, False
            return self
        aged = design(edges)
        if mc.time_in_stage == "on":
            self.design, self.time_in_stage = aged, True
            return self
        lm = {name: sum(_log_marginal(self._cells(d, r.source, None)[1], self.concentration)
                        for r in d.rows) for name, d in (("pooled", pooled), ("aged", aged))}
        self.time_in_stage = lm["aged"] > lm["pooled"]
        self.design = aged if self.time_in_stage else pooled
        self.notes.append(f"time in stage {'on' if self.time_in_stage else 'off'} by the exact marginal "
                          f"likelihood (log Bayes factor {lm['aged'] - lm['pooled']:+.1f} for time in stage)")
        return self

    def _require_fit(self) -> Design:
        if self.design is None:
            raise ModelConfigError("fit the model first: ConjugateFunnel(spec).fit(data)")
        return self.design

    def _cells(self, d: Design, source: str, segment: Mapping[str, str] | None, month: pd.Timestamp | None = None
               ) -> tuple[list[str], np.ndarray]:
        """Summed counts of a row per age bucket, (buckets, n_dest), for a segment and month."""
        i = d.row_index(source)
        r = d.rows[i]
        mask = d.row == i
        for f, level in (segment or {}).items():
            if f not in d.factors:
                raise ModelConfigError(f"segment factor {f!r} was not kept; pass factors=[{f!r}] in model_config")
            if level not in d.factors[f]:
                raise ModelConfigError(f"unknown level {level!r} of {f!r}; levels are {d.factors[f]}")
            mask &= d.levels[f] == d.factors[f].index(level)
        for j, cp in enumerate(d.change_points):
            if cp.stage == source and month is not None:
                mask &= d.active[:, j] == float(month >= cp.month)
        out = np.zeros((d.n_buckets, len(r.dest)))
        np.add.at(out, d.age[mask], d.counts[mask][:, :len(r.dest)])
        return r.dest, out

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, month: Any = None, *,
                         draws: int | None = None, seed: int = 0) -> PosteriorFunnel:
        """Exact posterior draws as a :class:`PosteriorFunnel` (``month`` picks the side of
        each change point; rates do not otherwise vary by month in quick mode)."""
        d = self._require_fit()
        assert self.data is not None
        n = DEFAULT_DRAWS if draws is None else int(draws)
        rng = np.random.default_rng(seed)
        m = pd.Timestamp(month).to_period("M").to_timestamp() if month is not None else d.months[-1]
        n_ages = self.cold_after + 1 if self.time_in_stage and self.cold_after else 1
        chain_bucket = bucket_of(np.arange(n_ages), d.age_edges)
        rows = {}
        for r in d.rows:
            dest, counts = self._cells(d, r.source, segment, m)
            a = counts + bucket_priors(counts, self.concentration)    # (buckets, n_dest)
            g = rng.standard_gamma(a[None], size=(n,) + a.shape)
            p = g / g.sum(-1, keepdims=True)                     # Dirichlet draws per bucket
            rows[r.source] = (dest, p[:, 0] if r.source == ENTRY else p[:, chain_bucket])
        value = deal_value_draws(self.data.won_values, n, segment=segment, seed=seed + 1)
        label = ", ".join(f"{k}={v}" for k, v in (segment or {}).items()) or "all"
        return PosteriorFunnel.from_rows(self.spec.codes, rows, deal_value=value, n_ages=n_ages,
                                         names=self.spec.names, label=label,
                                         meta={"model": "quick (conjugate)", "cold_after": self.cold_after})

    def row_posterior_mean(self, segment: Mapping[str, str] | None = None) -> dict[str, pd.Series]:
        """Exact posterior mean of each row's destination probabilities (ages pooled)."""
        d = self._require_fit()
        out = {}
        for r in d.rows:
            dest, counts = self._cells(d, r.source, segment)
            a = counts.sum(0) + self.concentration
            out[r.source] = pd.Series(a / a.sum(), index=dest)
        return out

    def row_counts(self, segment: Mapping[str, str] | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
        """Summed counts per row (destinations, counts), ages pooled, for a segment or all."""
        d = self._require_fit()
        return {r.source: (lambda dc: (dc[0], dc[1].sum(0)))(self._cells(d, r.source, segment)) for r in d.rows}

    def describe(self) -> str:
        """Quick mode, with or without time in stage."""
        return f"{self.description}; {'time in stage' if self.time_in_stage else 'memoryless'}"

    def segments(self) -> dict[str, list[str]]:
        """Segment factor -> levels."""
        return {f: list(v) for f, v in (self.design.factors if self.design else {}).items()}

    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """Exact posterior: nothing to diagnose."""
        del warn
        return Diagnostics(ok=True, method="exact", notes=tuple(self.notes),
                           message="Quick mode: exact conjugate posterior, no MCMC to diagnose.")

    def save(self, path: str | Path) -> Path:
        """Write the counts and settings as JSON (the posterior follows exactly from them)."""
        assert self.data is not None
        path = Path(path)
        payload = {"spec": self.spec.to_dict(), "model_config": self.model_config.model_dump(),
                   "concentration": self.concentration,
                   "transitions": json.loads(self.data.transitions.to_json(orient="split", date_format="iso")),
                   "won_values": json.loads(self.data.won_values.to_json(orient="split"))}
        path.write_text(json.dumps(payload), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConjugateFunnel":
        """Read a quick-mode fit written by :meth:`save`."""
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
            tr = pd.read_json(json.dumps(payload["transitions"]), orient="split")
            wv = pd.read_json(json.dumps(payload["won_values"]), orient="split")
        except (OSError, ValueError, KeyError) as exc:
            raise ModelConfigError(f"{path}: not a quick-mode fit ({exc}); refit") from None
        m = cls(payload["spec"], payload["model_config"], concentration=payload["concentration"])
        return m.fit(FunnelData(tr.assign(month=pd.to_datetime(tr["month"])), wv))
