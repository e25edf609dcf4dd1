"""The Bayesian funnel model: a monthly Markov chain over (stage, months in stage), fitted in PyMC.

Each row (``ENTRY`` and every open stage) is a multinomial over its allowed destinations
(:mod:`funnel_models.models.structure`); the log-odds of each destination against staying
come from the one linear predictor (:mod:`funnel_models.models.predictor`), with priors in
:mod:`funnel_models.models.graph`. Optional components:

- **time in stage** (``time_in_stage``): move probabilities depend on the whole months
  already spent in the stage, piecewise constant over age buckets, so "most wins come
  soon after a lead arrives and old leads rarely close" is representable; a lead that
  sits ``cold_after`` months without moving counts as cold in the eventual quantities;
- **month effects** (``month_effects``): whole months differ by more than binomial noise;
  forecasts draw a fresh shock for every future month;
- seasonality, a smooth random walk, known change points, partially pooled segments.

``auto`` switches are settled by leave-one-out predictive accuracy
(:mod:`funnel_models.models.selection`): every candidate variant is sampled from the same
compiled graph and the rule picks one; ``selection`` holds the ELPD table. When the
sampler reports problems and the segment parameterization was chosen automatically, the
chosen variant is refitted in the other geometry and the better fit is kept (said in
:meth:`diagnostics` notes).

Lifecycle (PyMC-Marketing style): ``FunnelModel(spec, model_config, sampler_config)``
validates and samples nothing; ``.fit(data)`` returns self and sets ``.idata``.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data.spec import ENTRY, FunnelSpec
from ..errors import FunnelWarning, ModelConfigError
from ..intervals import central_interval
from ..posterior import PosteriorFunnel
from . import idata_access as acc
from . import selection
from .base import BaseFunnelModel, Diagnostics, check_diagnostics
from .config import ModelConfig, SamplerConfig, parse_config
from .fitcache import FitCache, default_cache_dir, digest_arrays, stable_hash
from .graph import VARIANT_LABELS, Variant, age_key, build_graph, graph_data, theta_names
from .inputs import FunnelData, deal_value_draws, prepare
from .monthfx import MONTH_LABELS, average_month_error, fit_month_effects
from .predictor import pointwise_loglik, probabilities
from .sampling import sample_compiled
from .structure import ChangePoint, Design, build_design, bucket_of, choose_cold_after, safe_name, season_index

__all__ = ["FunnelModel", "default_cache_dir"]

#: Revision of what a fit computes; part of the cache key and of every saved fit. Bump it
#: whenever a change makes the same data and settings give a different fit (4: geometry by
#: data for every hierarchical effect), so caches and saved files of older revisions are
#: refitted, never silently reused (5: month effects non-centered first; 6: ELPD differences
#: up to 4 are ties in the variant choice; 7: the month stage samples with the file's
#: sampler first, and a first stage failing in both geometries is sampled again carefully;
#: 8: a month shock common to every row; 9: the prior variance of a move's month shock split
#: between the common part and the row's own; 10: back to two half-normal scales, since the
#: split failed the sampler checks on Olist's full history).
_FORMAT_VERSION = "10"
#: Keep every n-th draw of each chain for the leave-one-out comparisons (PSIS needs hundreds, not thousands).
LOO_THIN = 4


class FunnelModel(BaseFunnelModel):
    """Bayesian Markov model of a sales funnel over (stage, months in stage).

    Parameters
    ----------
    spec : FunnelSpec, mapping or path
        The funnel.
    model_config : ModelConfig or mapping, optional
        Factors, time in stage, month effects, seasonality, change points,
        parameterization and priors (:class:`~funnel_models.models.config.ModelConfig`).
    sampler_config : SamplerConfig or mapping, optional
        Sampler (nutpie or pymc), draws, tune, chains, seed.
    cache_dir : path, optional
        Where fits are cached by a hash of spec, config and data; ``False`` disables.

    Examples
    --------
    >>> from funnel_models.datasets.demo import demo_data
    >>> d = demo_data(months=6, leads_per_month=60)
    >>> m = FunnelModel(d.spec, model_config={"factors": ["region"]})
    >>> m.idata is None
    True
    """

    name = "markov"
    description = "Bayesian Markov model over stage and months in stage (MCMC)"

    def __init__(self, spec: FunnelSpec | Mapping | str, model_config: ModelConfig | Mapping | None = None,
                 sampler_config: SamplerConfig | Mapping | None = None, *,
                 cache_dir: str | Path | None | bool = None) -> None:
        self.spec = FunnelSpec.load(spec)
        self.model_config: ModelConfig = parse_config(ModelConfig, model_config, "model_config")  # type: ignore[assignment]
        self.sampler_config: SamplerConfig = parse_config(SamplerConfig, sampler_config, "sampler_config")  # type: ignore[assignment]
        for cp in self.model_config.change_points:
            if cp.stage not in self.spec.codes:
                raise ModelConfigError(f"model_config.change_points: stage {cp.stage!r} is not an open "
                                       f"stage; stages are {list(self.spec.codes)}")
        self.cache = FitCache(None if cache_dir is False else cache_dir or default_cache_dir())
        self.idata: Any = None
        self.data: FunnelData | None = None
        self.design: Design | None = None
        self.variant = Variant()
        self.fine: Design | None = None
        self.recorded_from: pd.Timestamp | None = None
        self.cold_after: int | None = None
        self.parameterization: dict[str, str] = {}
        self.selection: pd.DataFrame | None = None
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ configuration
    def _change_points(self) -> list[ChangePoint]:
        return [ChangePoint(stage=c.stage, month=pd.Timestamp(c.month), name=c.name)
                for c in self.model_config.change_points]

    def config_dict(self) -> dict[str, Any]:
        """Spec, model and sampler config as one JSON-able dict."""
        return {"spec": self.spec.to_dict(), "model_config": self.model_config.model_dump(),
                "sampler_config": self.sampler_config.model_dump(exclude={"progress"}),
                "format": _FORMAT_VERSION}

    def fit_hash(self) -> str:
        """Hash of config and data: the cache key and the saved file's identity."""
        if self.data is None:
            raise ModelConfigError("no data yet: call fit(data) first")
        return stable_hash(json.dumps(self.config_dict(), sort_keys=True), self.data.fingerprint())

    def candidates(self) -> list[Variant]:
        """The first-stage variants the configuration leaves open (time in stage on/off)."""
        opts = {"on": (True,), "off": (False,), "auto": (False, True)}
        return [Variant(a, False) for a in opts[self.model_config.time_in_stage]]

    def describe(self) -> str:
        """The model and the variant the data chose, e.g. "...: time in stage + month effects"."""
        return f"{self.description}: {self.variant.label}"

    def segments(self) -> dict[str, list[str]]:
        """Segment factor -> levels of the fitted data."""
        return {f: list(v) for f, v in (self.design.factors if self.design else {}).items()}

    # ------------------------------------------------------------------ data
    def _set_data(self, data: Any) -> None:
        mc = self.model_config
        fd = prepare(data, self.spec, factors=mc.factors)
        self.data = fd
        tr = fd.transitions
        if "age" not in tr.columns:
            tr = tr.assign(age=0)
        self.recorded_from = fd.recorded_from
        self.cold_after = mc.cold_after if isinstance(mc.cold_after, int) else choose_cold_after(tr, mc.age_buckets)
        edges = [e for e in mc.age_buckets if e <= self.cold_after] if mc.time_in_stage != "off" else [0]
        common = dict(factors=mc.factors, change_points=self._change_points(), age_edges=edges)
        self.design = build_design(tr, self.spec, by_month=mc.time_varying, season=mc.seasonality, **common)
        need_fine = len(self.candidates()) > 1 or mc.month_effects != "off" or mc.seasonality != "none"
        self.fine = self.design if mc.time_varying or not need_fine else \
            build_design(tr, self.spec, by_month=True, season=mc.seasonality, levels=self.design.factors, **common)

    def _choose_parameterization(self) -> dict[str, str]:
        """Centered or non-centered, per segment factor and per row's time-in-stage walk.

        ``auto``: centered where the data pin the effects down (the smallest cell of a
        factor, or the fewest moves out of a row in any age bucket, reaches
        ``centered_min_count``), non-centered elsewhere.
        """
        d = self.design
        assert d is not None
        mode, enough = self.model_config.parameterization, self.model_config.centered_min_count
        smallest = {}
        for f in d.factors:
            cells = [v for k, v in d.cell_counts.items() if k.endswith(f"|{f}") and not k.startswith(ENTRY)]
            smallest[f] = min(int(v.min()) for v in cells) if cells else 0
        if d.n_buckets > 1:
            moves = np.zeros((len(d.rows), d.n_buckets))
            np.add.at(moves, (d.row, d.age), d.counts.sum(1))
            smallest.update({age_key(r.source): int(moves[i].min()) for i, r in enumerate(d.rows)})
        return {k: mode if mode != "auto" else ("centered" if n >= enough else "non_centered")
                for k, n in smallest.items()}

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, *, progress: bool | None = None) -> "FunnelModel":
        """Fit on stage history, snapshots or transitions; returns self and sets ``.idata``.

        A fit with the same spec, config and data is loaded from the cache folder.
        """
        t0 = time.perf_counter()
        self._set_data(data)
        key = self.fit_hash()
        cached = self.cache.get(key, lambda p: FunnelModel.load(p))
        if cached is not None:
            self.__dict__.update({k: v for k, v in cached.__dict__.items() if k not in ("cache", "timings")})
            self.timings = {"cache_load": time.perf_counter() - t0}
            return self
        show = self.sampler_config.progress if progress is None else progress
        self.parameterization = self._choose_parameterization()
        self.notes, self.timings, self.selection = [], {"compile": 0.0, "sampling": 0.0}, None
        if self.recorded_from is not None:
            self.notes.append(f"outcomes (wins, losses) are recorded only from {self.recorded_from:%Y-%m}; "
                              "earlier months are left out of the fit")
        fits = self._fit_variants(self.candidates(), show)
        self._select(fits)
        self._refit_if_needed(show)
        self._fit_months(show)
        self.timings["total"] = time.perf_counter() - t0
        self.cache.put(key, self.save)
        return self

    def _sample(self, variants: list[Variant], show: bool, sampler: SamplerConfig | None = None
                ) -> dict[Variant, Any]:
        d = self.design
        assert d is not None
        out = {}
        for v in variants:
            with_age = v.time_in_stage and d.n_buckets > 1
            key = d.signature() + json.dumps(self.model_config.model_dump(), sort_keys=True) + \
                json.dumps(self.parameterization, sort_keys=True) + f"{with_age}"
            idata, timing = sample_compiled(
                key, lambda static: build_graph(d, self.model_config, self.parameterization, with_age=with_age,
                                                static_shape=static),
                graph_data(d), sampler or self.sampler_config, show)
            for k, s in timing.items():
                self.timings[k] = self.timings.get(k, 0.0) + s
            out[v] = idata
        return out

    def _fit_variants(self, variants: list[Variant], show: bool) -> dict[Variant, Any]:
        if self.design is not None and self.design.n_buckets == 1:
            variants = [Variant(False, False)]
        return self._sample(variants, show)

    def _theta_draws(self, idata: Any, design: Design, thin: int | None = None) -> dict[str, np.ndarray]:
        """Effective parameters of ``idata`` (every ``thin``-th draw of each chain when given)."""
        out = {}
        for n in theta_names(design, len(design.change_points)):
            if acc.has(idata, n):
                out[n] = acc.draws(idata, n, thin=thin)
        return out

    def _mean_probabilities(self, idata: Any, design: Design) -> np.ndarray:
        """Posterior-mean destination probabilities of ``design``'s observations, (n_obs, Dmax)."""
        theta = self._theta_draws(idata, design, thin=LOO_THIN)
        D = next(iter(theta.values())).shape[0]
        total = np.zeros(design.counts.shape)
        for a in range(0, D, 200):
            part = {k: v[a:a + 200] for k, v in theta.items()}
            total += probabilities(part, design.arrays(), n_slots=design.n_slots,
                                   factors=[safe_name(f) for f in design.factors],
                                   n_change=len(design.change_points)).sum(0)
        return total / D

    def _loglik(self, idata: Any) -> np.ndarray:
        """Pointwise log-likelihood of the lead-level cells by month (thinned draws, for LOO)."""
        d = self.fine
        assert d is not None
        return pointwise_loglik(self._theta_draws(idata, d, thin=LOO_THIN), d.arrays(), d.counts, n_slots=d.n_slots,
                                factors=[safe_name(f) for f in d.factors], n_change=len(d.change_points))

    def _select(self, fits: dict[Variant, Any]) -> None:
        if len(fits) == 1:
            (self.variant, self.idata), = fits.items()
            return
        lls = {v.label: self._loglik(idata) for v, idata in fits.items()}
        table = selection.loo_table(lls, {v.label: v.size for v in fits}, self.sampler_config.chains)
        self.selection = table.assign(stage="time in stage (lead-level cells by month)")
        self.variant = VARIANT_LABELS[selection.choose(table)]
        self.idata = fits[self.variant]
        self.notes.append(f"chose '{self.variant.label}' by leave-one-out accuracy ({selection.RULE})")

    def _fit_months(self, show: bool) -> None:
        """Second stage: month effects and seasonality on monthly totals (see :mod:`.monthfx`)."""
        mc = self.model_config
        if mc.month_effects == "off" and mc.seasonality == "none":
            return
        cands = {"on": (True,), "off": (False,), "auto": (False, True)}[mc.month_effects]
        mean = self._mean_probabilities(self.idata, self.fine)
        n_thin = next(iter(self._theta_draws(self.idata, self.fine, thin=LOO_THIN).values())).shape[0]
        fx, timing = fit_month_effects(self.fine, mean, n_thin, mc, self.sampler_config, cands, show)
        self.notes.extend(fx.notes)
        for k, s in timing.items():
            self.timings[k] = self.timings.get(k, 0.0) + s
        chosen = cands[0]
        if len(cands) > 1:
            sizes = {MONTH_LABELS[c]: int(c) for c in cands}
            table = selection.loo_table(dict(fx.loglik), sizes, self.sampler_config.chains)
            chosen = selection.choose(table) == MONTH_LABELS[True]
            table = table.assign(stage="month effects (monthly totals per stage)")
            self.selection = table if self.selection is None else pd.concat([self.selection, table], ignore_index=True)
            self.notes.append(f"{'kept' if chosen else 'left out'} month effects by leave-one-out accuracy")
        self.variant = Variant(self.variant.time_in_stage, chosen)
        month_idata = fx.fits.get(chosen)
        if month_idata is not None:
            for name in ("sigma_month", "sigma_common", "season"):
                if acc.has(month_idata, name):
                    acc.attach(self.idata, f"m2_{name}", month_idata, name)

    def _refit_if_needed(self, show: bool) -> None:
        diag = self.diagnostics(warn=False)
        if diag.ok or self.model_config.parameterization != "auto" or not self.parameterization:
            return
        first = dict(self.parameterization)
        flipped = {f: "non_centered" if p == "centered" else "centered" for f, p in first.items()}
        self.parameterization = flipped
        refit = self._keep_if_better(self._sample([self.variant], show)[self.variant], diag)
        if not refit:
            self.parameterization = first
        self.notes.append(f"the first fit did not converge ({diag.message}); refitted with every hierarchical "
                          f"effect in the other geometry ({flipped}) and kept the {'refit' if refit else 'first fit'}")
        kept = self.diagnostics(warn=False)
        if kept.ok:
            return
        # both geometries failed: the kept one again with smaller steps and longer tuning
        careful = self.sampler_config.careful()
        again = self._keep_if_better(self._sample([self.variant], show, careful)[self.variant], kept)
        self.notes.append(f"sampled the {'refit' if refit else 'first fit'}'s geometry again with tuning "
                          f"{careful.tune} and target acceptance {careful.target_accept:g} and kept "
                          f"{'that' if again else 'the earlier'} fit")

    def _keep_if_better(self, idata: Any, than: Diagnostics) -> bool:
        """Make ``idata`` the fit if it sampled better than the fit whose diagnostics are
        ``than`` (the current one); returns whether it did."""
        old, self.idata = self.idata, idata
        better = self.diagnostics(warn=False).better_than(than)
        if not better:
            self.idata = old
        return better

    # ------------------------------------------------------------------ posterior
    def _require_fit(self) -> None:
        if self.idata is None:
            raise ModelConfigError("the model is not fitted: call .fit(data) or FunnelModel.load(path)")

    def _theta(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        d = self.design
        assert d is not None
        out = {}
        for n in theta_names(d, len(d.change_points)):
            if acc.has(self.idata, n):
                a = acc.draws(self.idata, n)
                out[n] = a if idx is None else a[idx]
        return out

    def _month_index(self, month: Any) -> int:
        d = self.design
        assert d is not None
        if not d.by_month:
            return 0
        m = np.datetime64(pd.Timestamp(month).to_period("M").to_timestamp())
        t = int(np.searchsorted(np.array(d.months, dtype="datetime64[ns]"), m, side="right")) - 1
        return min(max(t, 0), len(d.months) - 1)

    def _query(self, segment: Mapping[str, str] | None, month: pd.Timestamp, n_ages: int) -> tuple[dict, list]:
        """A design with one observation per (row, chain age) for a segment and month."""
        d = self.design
        assert d is not None
        segment = dict(segment or {})
        for f, level in segment.items():
            if f not in d.factors:
                raise ModelConfigError(f"segment factor {f!r} is not in the model; factors: {list(d.factors)}")
            if level not in d.factors[f]:
                raise ModelConfigError(f"unknown level {level!r} of {f!r}; levels: {d.factors[f]}")
        slot, age, active, keys = [], [], [], []
        dmax = d.slot.shape[1]
        for i, r in enumerate(d.rows):
            ages = [0] if r.source == ENTRY else list(range(n_ages))
            for a in ages:
                s = np.full(dmax, d.n_slots)
                s[:len(r.slots)] = r.slots
                slot.append(s)
                age.append(0 if r.source == ENTRY else int(bucket_of(np.array([a]), d.age_edges)[0]))
                active.append([float(c.stage == r.source and month >= c.month) for c in d.change_points])
                keys.append((i, a))
        n = len(slot)
        design = {"slot": np.array(slot), "month": np.full(n, self._month_index(month)), "age": np.array(age),
                  "season": np.zeros(n, np.int64), "active": np.array(active).reshape(n, len(d.change_points))}
        for f, levels in d.factors.items():
            design[f"level_{safe_name(f)}"] = np.full(n, levels.index(segment[f]) if f in segment else 0)
        return design, keys

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, month: Any = None, *,
                         draws: int | None = None, seed: int = 0) -> PosteriorFunnel:
        """Posterior draws of the monthly funnel for a segment and month.

        Parameters
        ----------
        segment : mapping factor -> level, optional
            Factors left out are at their average (zero) effect.
        month : date-like, optional
            Which month's rates (random walk and change points); default the last fitted
            month. Month shocks and seasonality are not in the rates (the average month):
            they are carried as ``shock_sd``, ``common_sd`` and ``season`` for forecasts. With month
            effects, the average month itself is known only to within ``sigma_month /
            sqrt(months observed)`` per row, and each draw's rates carry that error too.
        draws : int, optional
            Thin to this many draws (default: all).
        seed : int
            Seed of the thinning, of the average month's error and of the deal-value draws.
        """
        self._require_fit()
        d = self.design
        assert d is not None and self.data is not None
        total = acc.n_draws(self.idata)
        idx = None if draws is None or draws >= total else \
            np.sort(np.random.default_rng(seed).choice(total, draws, replace=False))
        m = pd.Timestamp(month).to_period("M").to_timestamp() if month is not None else d.months[-1]
        n_ages = self.cold_after + 1 if self.variant.time_in_stage and self.cold_after else 1
        theta = self._theta(idx)
        if acc.has(self.idata, "m2_season"):
            s = acc.draws(self.idata, "m2_season")
            theta["season"] = s if idx is None else s[idx]
        q_theta = {k: v for k, v in theta.items() if k not in ("month", "season")}
        assert self.fine is not None
        level = average_month_error(self.fine, self._month_scale("sigma_month", idx),
                                    self._month_scale("sigma_common", idx), seed)
        if level is not None:
            q_theta["intercept"] = q_theta["intercept"] + level
        for f in d.factors:
            if f not in (segment or {}):
                q_theta[f"effect_{safe_name(f)}"] = np.zeros_like(theta[f"effect_{safe_name(f)}"])
        design, keys = self._query(segment, m, n_ages)
        probs = probabilities(q_theta, design, n_slots=d.n_slots, factors=[safe_name(f) for f in d.factors],
                              n_change=len(d.change_points))
        rows = self._assemble_rows(probs, keys, n_ages)
        n = probs.shape[0]
        value = deal_value_draws(self.data.won_values, n, segment=segment, seed=seed)
        label = ", ".join(f"{k}={v}" for k, v in (segment or {}).items()) or "all"
        return PosteriorFunnel.from_rows(
            self.spec.codes, rows, deal_value=value, n_ages=n_ages, names=self.spec.names, label=label,
            meta={"month": str(m.date()), "model": self.variant.label, "cold_after": self.cold_after},
            shock_sd=self._shock_sd(idx, n), common_sd=self._month_scale("sigma_common", idx),
            season=self._season(theta, n))

    def _assemble_rows(self, probs: np.ndarray, keys: list, n_ages: int) -> dict:
        d = self.design
        assert d is not None
        rows = {}
        for i, r in enumerate(d.rows):
            pos = [j for j, (ri, _) in enumerate(keys) if ri == i]
            p = probs[:, pos, :len(r.dest)]
            rows[r.source] = (r.dest, p[:, 0] if r.source == ENTRY else p)
        return rows

    def _row_position(self) -> list[int]:
        """Position of each design row in the posterior's source order [stages..., ENTRY]."""
        d = self.design
        assert d is not None
        K = self.spec.n_stages
        return [K if r.source == ENTRY else self.spec.codes.index(r.source) for r in d.rows]

    def _month_scale(self, name: str, idx: np.ndarray | None) -> np.ndarray | None:
        """Draws of a fitted month-shock scale (``sigma_month`` or ``sigma_common``), or None."""
        if not (self.variant.month_effects and acc.has(self.idata, f"m2_{name}")):
            return None
        sig = acc.draws(self.idata, f"m2_{name}")
        return sig if idx is None else sig[idx]

    def _shock_sd(self, idx: np.ndarray | None, n: int) -> np.ndarray | None:
        sig = self._month_scale("sigma_month", idx)
        if sig is None:
            return None
        out = np.zeros((n, self.spec.n_stages + 1))
        out[:, self._row_position()] = sig
        return out

    def _season(self, theta: dict[str, np.ndarray], n: int) -> np.ndarray | None:
        d = self.design
        assert d is not None
        if theta.get("season") is None:
            return None
        K = self.spec.n_stages
        states = list(self.spec.states)
        pos_of = self._row_position()
        s_idx = season_index(pd.date_range("2001-01-01", periods=12, freq="MS"), d.season_kind)
        out = np.zeros((n, 12, K + 1, K + 2))
        for i, r in enumerate(d.rows):
            cols = [states.index(x) for x in r.dest[1:]]
            out[:, :, pos_of[i], cols] = theta["season"][:, s_idx][:, :, r.slots]
        return out

    def segment_effects(self, level: float = 0.9) -> pd.DataFrame:
        """Segment effects on the log-odds of every move: source, dest, factor, level, mean, lo, hi."""
        self._require_fit()
        d = self.design
        assert d is not None
        rows = []
        for f, levels in d.factors.items():
            e = acc.draws(self.idata, f"effect_{safe_name(f)}")          # (draws, slots, levels)
            lo, hi = central_interval(e, level)
            for r in d.rows:
                for di, dest in enumerate(r.dest[1:]):
                    s = r.slots[di]
                    for li, lev in enumerate(levels):
                        rows.append((r.source, dest, f, lev, float(e[:, s, li].mean()), float(lo[s, li]),
                                     float(hi[s, li])))
        return pd.DataFrame(rows, columns=["source", "dest", "factor", "level", "mean", "lo", "hi"])

    def change_point_effects(self) -> pd.DataFrame:
        """Before/after conversion at each change point's stage, and P(improved)."""
        self._require_fit()
        out = []
        for cp in self._change_points():
            before = self.posterior_funnel(month=cp.month - pd.DateOffset(months=1))
            after = self.posterior_funnel(month=cp.month)
            k = self.spec.codes.index(cp.stage)
            b, a = before.conversion()[:, k], after.conversion()[:, k]
            dlt = a - b
            out.append({"change": cp.label, "stage": cp.stage, "month": cp.month, "before_mean": b.mean(),
                        "after_mean": a.mean(), "uplift_mean": dlt.mean(), "uplift_lo": np.quantile(dlt, 0.05),
                        "uplift_hi": np.quantile(dlt, 0.95), "p_improved": float((dlt > 0).mean())})
        return pd.DataFrame(out) if out else super().change_point_effects()

    # ------------------------------------------------------------------ checks
    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """Convergence diagnostics (r_hat, ESS, divergences); warns loudly when bad."""
        self._require_fit()
        diag = check_diagnostics(self._sampler_stats(self.idata), tuple(self.notes))
        if warn and not diag.ok:
            warnings.warn(diag.message, FunnelWarning, stacklevel=2)
        return diag

    def predictive(self, *, draws: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior predictive transition counts of every stacked observation.

        Returns ``observed`` (n_obs, Dmax), ``predicted`` (draws, n_obs, Dmax) and the
        ``probabilities``.
        """
        self._require_fit()
        d = self.design
        assert d is not None
        total = acc.n_draws(self.idata)
        idx = np.random.default_rng(seed).choice(total, min(draws, total), replace=False)
        probs = probabilities(self._theta(idx), d.arrays(), n_slots=d.n_slots,
                              factors=[safe_name(f) for f in d.factors], n_change=len(d.change_points))
        n = d.counts.sum(1)
        sim = np.random.default_rng(seed + 1).multinomial(np.broadcast_to(n, probs.shape[:2]), probs)
        return {"observed": d.counts, "predicted": sim, "probabilities": probs}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fit to NetCDF: draws, config, data tables and integrity hashes."""
        self._require_fit()
        assert self.data is not None
        attrs = {"funnel_config": json.dumps(self.config_dict(), sort_keys=True), "funnel_hash": self.fit_hash(),
                 "funnel_state": json.dumps({"parameterization": self.parameterization, "cold_after": self.cold_after,
                                             "recorded_from": str(self.recorded_from) if self.recorded_from else None,
                                             "variant": self.variant.label, "notes": self.notes}),
                 "funnel_draws": digest_arrays(acc.arrays(self.idata))}
        tables = {"transitions": self.data.transitions, "won_values": self.data.won_values}
        if self.selection is not None:
            tables["selection"] = self.selection
        acc.save(self.idata, Path(path), attrs, tables)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "FunnelModel":
        """Load a saved fit; :class:`ModelConfigError` when it does not match its hashes."""
        path = Path(path)
        if not path.exists():
            raise ModelConfigError(f"{path}: no saved model there")
        idata, attrs, tables = acc.load(path)
        need = {"funnel_config", "funnel_hash", "funnel_state", "funnel_draws"}
        if not need <= set(attrs):
            raise ModelConfigError(f"{path}: not a fit saved by this version of funnel_models; refit")
        cfg = json.loads(attrs["funnel_config"])
        if cfg.get("format") != _FORMAT_VERSION:
            raise ModelConfigError(f"{path}: saved by another version of the model (revision {cfg.get('format')}; "
                                   f"this version fits revision {_FORMAT_VERSION}); refit")
        state = json.loads(attrs["funnel_state"])
        m = cls(cfg["spec"], cfg["model_config"], cfg["sampler_config"], cache_dir=False)
        start = pd.Timestamp(state["recorded_from"]) if state.get("recorded_from") else None
        m._set_data(FunnelData(tables["transitions"], tables["won_values"], start))
        if m.fit_hash() != attrs["funnel_hash"] or digest_arrays(acc.arrays(idata)) != attrs["funnel_draws"]:
            raise ModelConfigError(f"{path}: the stored hashes do not match its config, data or draws; the file "
                                   "is corrupt or was changed. Refit.")
        m.parameterization, m.cold_after = state["parameterization"], state["cold_after"]
        m.variant, m.notes = VARIANT_LABELS[state["variant"]], list(state["notes"])
        m.selection = tables.get("selection")
        m.idata = idata
        return m
