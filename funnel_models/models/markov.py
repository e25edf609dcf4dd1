"""The Bayesian funnel model: a monthly multi-state Markov chain fitted in PyMC.

Each row (``ENTRY`` and every open stage) is a multinomial over its allowed destinations
(see :mod:`funnel_models.models.structure`). The log-odds of each destination against the
reference (staying; the first stage for ENTRY) is::

    eta[row, dest] = intercept
                   + sum over factors of effect[factor][level]      (partial pooling)
                   + random_walk[month]                             (optional)
                   + sum over active change points of delta         (optional)

Segment effects are zero-sum over levels with one scale per factor. They are *centered*
where every level has plenty of transitions and *non-centered* where data are sparse
(``parameterization="auto"``): centered effects sample far better on data-rich cells,
non-centered ones on sparse cells. The likelihood uses the transition counts, which are
sufficient statistics, so the model size does not depend on the number of leads.

Lifecycle (PyMC-Marketing style): ``FunnelModel(spec, model_config, sampler_config)``
validates and samples nothing; ``.fit(data)`` returns self and sets ``.idata``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import FunnelWarning, ModelConfigError
from ..posterior import PosteriorFunnel
from ..data.spec import ENTRY, FunnelSpec
from . import idata_access as acc
from .config import ModelConfig, SamplerConfig, parse_config
from .inputs import FunnelData, deal_value_draws, prepare
from .structure import ChangePoint, FunnelStructure, RowData, build_structure

__all__ = ["FunnelModel", "default_cache_dir"]

_FORMAT_VERSION = "1"
# compiled nutpie models, keyed by graph signature: refits with new data do not recompile
_COMPILED: dict[str, Any] = {}


def default_cache_dir() -> Path:
    """Fit cache folder: ``$FUNNEL_CACHE_DIR`` or ``~/.cache/funnel_models``."""
    return Path(os.environ.get("FUNNEL_CACHE_DIR", Path.home() / ".cache" / "funnel_models"))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


class FunnelModel:
    """Bayesian monthly Markov model of a sales funnel.

    Parameters
    ----------
    spec : FunnelSpec, mapping or path
        The funnel.
    model_config : ModelConfig or mapping, optional
        Factors, time variation, change points, parameterisation and priors.
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
        self.cache_dir: Path | None = None if cache_dir is False else Path(cache_dir) if cache_dir else default_cache_dir()
        self.idata: Any = None
        self.data: FunnelData | None = None
        self.structure: FunnelStructure | None = None
        self.parameterization: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._pm_model: Any = None

    # ------------------------------------------------------------------ config
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
        h = hashlib.sha256(json.dumps(self.config_dict(), sort_keys=True).encode())
        h.update(self.data.fingerprint().encode())
        return h.hexdigest()[:20]

    # ------------------------------------------------------------------ building
    def _choose_parameterization(self, st: FunnelStructure) -> dict[str, str]:
        mode = self.model_config.parameterization
        out = {}
        for f in st.factors:
            if mode != "auto":
                out[f] = mode
                continue
            smallest = min(int(v.min()) for k, v in st.cell_counts.items()
                           if k.endswith(f"|{f}") and not k.startswith(ENTRY))
            out[f] = "centered" if smallest >= self.model_config.centered_min_count else "non_centered"
        return out

    def _slots(self) -> list[np.ndarray]:
        """Flat parameter slots of each row's non-reference destinations."""
        assert self.structure is not None
        out, off = [], 0
        for row in self.structure.rows:
            out.append(np.arange(off, off + len(row.dest) - 1))
            off += len(row.dest) - 1
        return out

    def _stacked(self) -> dict[str, np.ndarray]:
        """All rows' observations stacked into padded arrays (the ``pm.Data`` values)."""
        st = self.structure
        assert st is not None
        slots = self._slots()
        dmax = max(len(r.dest) for r in st.rows)
        n_slots = sum(len(s) for s in slots)
        counts, slot_idx, levels, month, active = [], [], {f: [] for f in st.factors}, [], []
        for row, sl in zip(st.rows, slots):
            c = np.zeros((row.n_obs, dmax), dtype=np.int64)
            c[:, :len(row.dest)] = row.counts
            counts.append(c)
            si = np.full((row.n_obs, dmax - 1), n_slots, dtype=np.int64)  # n_slots = padding slot
            si[:, :len(sl)] = sl
            slot_idx.append(si)
            for f in st.factors:
                levels[f].append(row.levels[f])
            month.append(np.maximum(row.month, 0))
            act = np.zeros((row.n_obs, max(len(st.change_points), 1)))
            for j, cp in enumerate(st.change_points):
                if cp.stage == row.source:
                    act[:, j] = row.active[:, j]
            active.append(act)
        out = {"counts": np.concatenate(counts), "slot": np.concatenate(slot_idx),
               "month": np.concatenate(month), "active": np.concatenate(active)}
        for f in st.factors:
            out[f"level_{_safe(f)}"] = np.concatenate(levels[f])
        return out

    def build_model(self, data: pd.DataFrame | FunnelData | None = None) -> Any:
        """Build (not sample) the PyMC model for ``data`` (or the fitted data).

        All rows are stacked into one padded (observations x destinations) array so the
        compiled graph stays small whatever the number of stages; padded destinations
        get probability zero and zero counts.
        """
        import pymc as pm
        import pytensor.tensor as pt

        if data is not None:
            self._set_data(data)
        st = self.structure
        assert st is not None
        pri = self.model_config.priors
        slots = self._slots()
        n_slots = sum(len(s) for s in slots)
        arrays = self._stacked()
        coords: dict[str, list] = {f: list(v) for f, v in st.factors.items()}
        coords["move"] = [f"{row.source}>{d}" for row in st.rows for d in row.dest[1:]]
        if st.time_varying:
            coords["month_step"] = [m.strftime("%Y-%m") for m in st.months[1:]]
        with pm.Model(coords=coords) as model:
            data = {k: pm.Data(k, v) for k, v in arrays.items()}
            slot = data["slot"]
            zero = pt.zeros((1,))
            intercept = pm.Normal("intercept", 0.0, pri.intercept_sigma, dims="move")
            eta = pt.concatenate([intercept, zero])[slot]
            for f in st.factors:
                sig = pm.HalfNormal(f"sigma_{_safe(f)}", pri.segment_sigma)
                if self.parameterization[f] == "centered":
                    eff = pm.ZeroSumNormal(f"effect_{_safe(f)}", sigma=sig, dims=("move", f))
                else:
                    eff = pm.ZeroSumNormal(f"effectz_{_safe(f)}", sigma=1.0, dims=("move", f)) * sig
                eff = pt.concatenate([eff, pt.zeros((1, len(st.factors[f])))], axis=0)
                eta = eta + eff[slot, data[f"level_{_safe(f)}"][:, None]]
            if st.time_varying:
                sig_rw = pm.HalfNormal("sigma_rw", pri.rw_sigma)
                z = pm.Normal("rwz", 0.0, 1.0, dims=("month_step", "move"))
                walk = pt.concatenate([pt.zeros((1, n_slots)), pt.cumsum(z * sig_rw, axis=0)], axis=0)
                walk = pt.concatenate([walk, pt.zeros((walk.shape[0], 1))], axis=1)
                eta = eta + walk[data["month"][:, None], slot]
            for j, cp in enumerate(st.change_points):
                row_i = [r.source for r in st.rows].index(cp.stage) if cp.stage in [r.source for r in st.rows] else None
                if row_i is None:
                    continue
                delta = pm.Normal(f"change_{j}", 0.0, pri.change_sigma, shape=len(slots[row_i]))
                full = pt.zeros((n_slots + 1,))
                full = pt.set_subtensor(full[slots[row_i]], delta)
                eta = eta + data["active"][:, j][:, None] * full[slot]
            pad = pt.eq(slot, n_slots)
            eta = pt.switch(pad, -1e4, eta)
            logits = pt.concatenate([pt.zeros((slot.shape[0], 1)), eta], axis=1)
            logp = pt.special.log_softmax(logits, axis=1)
            pm.Potential("transition_loglik", pt.sum(data["counts"] * logp))
        self._pm_model = model
        return model

    def _set_data(self, data: pd.DataFrame | FunnelData) -> None:
        fd = prepare(data, self.spec, factors=self.model_config.factors)
        self.data = fd
        self.structure = build_structure(fd.transitions, self.spec, factors=self.model_config.factors,
                                         time_varying=self.model_config.time_varying,
                                         change_points=self._change_points())
        self.parameterization = self._choose_parameterization(self.structure)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | FunnelData, *, progress: bool | None = None) -> "FunnelModel":
        """Fit on stage history, snapshots or transitions; returns self and sets ``.idata``.

        A fit with the same spec, config and data is loaded from the cache folder.
        """
        self._set_data(data)
        key = self.fit_hash()
        cached = self.cache_dir / f"fit-{key}.nc" if self.cache_dir else None
        if cached is not None and cached.exists():
            t0 = time.perf_counter()
            other = FunnelModel.load(cached)
            self.idata = other.idata
            self.timings = {"cache_load": time.perf_counter() - t0}
            return self
        sc = self.sampler_config
        show = sc.progress if progress is None else progress
        t0 = time.perf_counter()
        model = self.build_model()
        if sc.sampler == "nutpie":
            idata = self._sample_nutpie(model, show, t0)
        else:
            import pymc as pm
            t1 = time.perf_counter()
            self.timings["compile"] = 0.0
            with model:
                idata = pm.sample(draws=sc.draws, tune=sc.tune, chains=sc.chains, cores=min(2, sc.chains),
                                  random_seed=sc.seed, target_accept=sc.target_accept, progressbar=show,
                                  compute_convergence_checks=False)
            self.timings["sampling"] = time.perf_counter() - t1
        self.idata = idata
        if cached is not None:
            try:
                self.save(cached)
            except OSError as exc:  # a read-only cache must not break a fit
                warnings.warn(f"could not write the fit cache {cached}: {exc}", FunnelWarning, stacklevel=2)
        return self

    def _sample_nutpie(self, model: Any, show: bool, t0: float) -> Any:
        import nutpie

        sc = self.sampler_config
        assert self.structure is not None
        sig = self.structure.signature() + json.dumps(self.model_config.model_dump(), sort_keys=True) + \
            json.dumps(self.parameterization, sort_keys=True)
        compiled = _COMPILED.get(sig)
        if compiled is None:
            # cache=True lets Numba keep nutpie's wrapper functions on disk as well as
            # PyTensor's graph functions: a warm compile is ~2.5x faster (see ARCHITECTURE.md)
            compiled = nutpie.compile_pymc_model(model, cache=True)
            _COMPILED[sig] = compiled
        else:
            new = {k: v for k, v in self._stacked().items() if k in compiled.shared_data}
            compiled = compiled.with_data(**new)
        t1 = time.perf_counter()
        self.timings["compile"] = t1 - t0
        idata = nutpie.sample(compiled, draws=sc.draws, tune=sc.tune, chains=sc.chains, cores=min(2, sc.chains),
                              seed=sc.seed, progress_bar=show, low_rank_modified_mass_matrix=sc.low_rank,
                              target_accept=sc.target_accept, save_warmup=False)
        self.timings["sampling"] = time.perf_counter() - t1
        return idata

    def _obs_probabilities(self, get: Any) -> np.ndarray:
        """Destination probabilities of every stacked observation, (draws, n_obs, Dmax)."""
        st = self.structure
        assert st is not None
        arrays = self._stacked()
        slot = arrays["slot"]
        n_slots = sum(len(x) for x in self._slots())

        def ext(a: np.ndarray, axis: int) -> np.ndarray:
            pad = list(a.shape)
            pad[axis] = 1
            return np.concatenate([a, np.zeros(pad)], axis=axis)

        eta = ext(get("intercept"), 1)[:, slot]
        for f in st.factors:
            fs = _safe(f)
            if self.parameterization[f] == "centered":
                eff = get(f"effect_{fs}")
            else:
                eff = get(f"effectz_{fs}") * get(f"sigma_{fs}")[:, None, None]
            eta = eta + ext(eff, 1)[:, slot, arrays[f"level_{fs}"][:, None]]
        if st.time_varying:
            z = get("rwz") * get("sigma_rw")[:, None, None]
            walk = np.concatenate([np.zeros((z.shape[0], 1, z.shape[2])), np.cumsum(z, axis=1)], axis=1)
            eta = eta + ext(walk, 2)[:, arrays["month"][:, None], slot]
        slots = self._slots()
        sources = [r.source for r in st.rows]
        for j, cp in enumerate(st.change_points):
            if cp.stage not in sources:
                continue
            full = np.zeros((eta.shape[0], n_slots + 1))
            full[:, slots[sources.index(cp.stage)]] = get(f"change_{j}")
            eta = eta + arrays["active"][None, :, j, None] * full[:, slot]
        eta = np.where(slot[None] == n_slots, -np.inf, eta)
        logits = np.concatenate([np.zeros(eta.shape[:2] + (1,)), eta], axis=2)
        logits -= logits.max(2, keepdims=True)
        ex = np.exp(logits)
        return ex / ex.sum(2, keepdims=True)

    def _predictive(self, get: Any, seed: int) -> dict[str, np.ndarray]:
        arrays = self._stacked()
        probs = self._obs_probabilities(get)
        n = arrays["counts"].sum(1)
        rng = np.random.default_rng(seed)
        sim = rng.multinomial(np.broadcast_to(n, probs.shape[:2]), probs)
        return {"observed": arrays["counts"], "predicted": sim, "probabilities": probs}

    def sample_prior_predictive(self, data: pd.DataFrame | FunnelData | None = None, *, draws: int = 200,
                                seed: int = 0) -> dict[str, np.ndarray]:
        """Prior predictive transition counts for the data's observations (checks the priors).

        Returns a dict with ``observed`` (n_obs, Dmax), ``predicted`` (draws, n_obs, Dmax)
        counts and the implied ``probabilities``.
        """
        import pymc as pm
        model = self.build_model(data) if data is not None or self._pm_model is None else self._pm_model
        with model, warnings.catch_warnings():
            # the likelihood is a Potential; only parameters are drawn here, counts below
            warnings.filterwarnings("ignore", message="The effect of Potentials")
            prior = pm.sample_prior_predictive(draws=draws, random_seed=seed).prior

        def get(name: str) -> np.ndarray:
            a = prior[name].to_numpy()
            return a.reshape((-1,) + a.shape[2:])
        return self._predictive(get, seed)

    def sample_posterior_predictive(self, *, draws: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior predictive transition counts (same layout as the prior predictive)."""
        self._require_fit()
        total = acc.draws(self.idata, "intercept").shape[0]
        idx = np.random.default_rng(seed).choice(total, min(draws, total), replace=False)
        return self._predictive(lambda name: acc.draws(self.idata, name)[idx], seed)

    def _require_fit(self) -> None:
        if self.idata is None:
            raise ModelConfigError("the model is not fitted: call .fit(data) or FunnelModel.load(path)")

    # ------------------------------------------------------------------ posterior
    def _row_slots(self, row: RowData) -> np.ndarray:
        assert self.structure is not None
        return self._slots()[[r.source for r in self.structure.rows].index(row.source)]

    def _effect(self, row: RowData, factor: str) -> np.ndarray:
        """Draws of the (dest, level) effects of a factor on a row."""
        f, sl = _safe(factor), self._row_slots(row)
        if self.parameterization.get(factor) == "centered":
            return acc.draws(self.idata, f"effect_{f}")[:, sl]
        z = acc.draws(self.idata, f"effectz_{f}")[:, sl]
        return z * acc.draws(self.idata, f"sigma_{f}")[:, None, None]

    def segment_effects(self) -> pd.DataFrame:
        """Long table of segment effect draws summarised: row, dest, factor, level, mean, lo, hi (90%)."""
        self._require_fit()
        assert self.structure is not None
        out = []
        for row in self.structure.rows:
            for f, levels in self.structure.factors.items():
                e = self._effect(row, f)
                for di, dest in enumerate(row.dest[1:]):
                    for li, lev in enumerate(levels):
                        d = e[:, di, li]
                        out.append((row.source, dest, f, lev, d.mean(), *np.quantile(d, [0.05, 0.95])))
        return pd.DataFrame(out, columns=["source", "dest", "factor", "level", "mean", "lo", "hi"])

    def row_probabilities(self, row: RowData, segment: Mapping[str, str] | None, month: pd.Timestamp) -> np.ndarray:
        """Draws of a row's destination probabilities for a segment and month, (draws, D)."""
        st = self.structure
        assert st is not None
        sl = self._row_slots(row)
        eta = acc.draws(self.idata, "intercept")[:, sl]
        for f, level in (segment or {}).items():
            if f not in st.factors:
                raise ModelConfigError(f"segment factor {f!r} is not in the model; factors: {list(st.factors)}")
            if level not in st.factors[f]:
                raise ModelConfigError(f"unknown level {level!r} of {f!r}; levels: {st.factors[f]}")
            eta = eta + self._effect(row, f)[:, :, st.factors[f].index(level)]
        if st.time_varying:
            t = int(np.searchsorted(np.array(st.months, dtype="datetime64[ns]"), np.datetime64(month), side="right")) - 1
            t = min(max(t, 0), len(st.months) - 1)
            if t > 0:
                z = acc.draws(self.idata, "rwz")[:, :t][:, :, sl]
                eta = eta + (z * acc.draws(self.idata, "sigma_rw")[:, None, None]).sum(1)
        for j, cp in enumerate(st.change_points):
            if cp.stage == row.source and month >= cp.month:
                eta = eta + acc.draws(self.idata, f"change_{j}")
        logits = np.concatenate([np.zeros((eta.shape[0], 1)), eta], axis=1)
        logits -= logits.max(1, keepdims=True)
        ex = np.exp(logits)
        return ex / ex.sum(1, keepdims=True)

    def posterior_funnel(self, segment: Mapping[str, str] | None = None, month: str | pd.Timestamp | None = None,
                         *, seed: int = 0) -> PosteriorFunnel:
        """Posterior draws of the monthly funnel for a segment and month.

        Parameters
        ----------
        segment : mapping factor -> level, optional
            Factors left out are at their average (zero) effect.
        month : date-like, optional
            Which month's rates (random walk and change points); default the last month.
        """
        self._require_fit()
        st = self.structure
        assert st is not None and self.data is not None
        m = pd.Timestamp(month).to_period("M").to_timestamp() if month is not None else st.months[-1]
        rows = {row.source: (row.dest, self.row_probabilities(row, segment, m)) for row in st.rows}
        n = next(iter(rows.values()))[1].shape[0]
        value = deal_value_draws(self.data.won_values, n, segment=segment, seed=seed)
        label = ", ".join(f"{k}={v}" for k, v in (segment or {}).items()) or "all"
        return PosteriorFunnel.from_rows(self.spec.codes, rows, deal_value=value, names=self.spec.names,
                                         label=label, meta={"month": str(m.date())})

    def change_point_effects(self) -> pd.DataFrame:
        """Before/after conversion at each change point's stage, and P(improved)."""
        self._require_fit()
        st = self.structure
        assert st is not None
        out = []
        for cp in st.change_points:
            before = self.posterior_funnel(month=cp.month - pd.DateOffset(months=1))
            after = self.posterior_funnel(month=cp.month)
            k = self.spec.codes.index(cp.stage)
            b, a = before.conversion()[:, k], after.conversion()[:, k]
            d = a - b
            out.append({"change": cp.label, "stage": cp.stage, "month": cp.month,
                        "before_mean": b.mean(), "after_mean": a.mean(), "uplift_mean": d.mean(),
                        "uplift_lo": np.quantile(d, 0.05), "uplift_hi": np.quantile(d, 0.95),
                        "p_improved": float((d > 0).mean())})
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ reporting
    def summary(self, segment: Mapping[str, str] | None = None, level: float = 0.9) -> pd.DataFrame:
        """Tidy per-stage table: conversion, win rate, expected and median stall, with intervals."""
        return self.posterior_funnel(segment).stage_table(level)

    def parameter_summary(self) -> pd.DataFrame:
        """ArviZ summary of the sampled parameters (mean, sd, HDI, r_hat, ESS)."""
        self._require_fit()
        return acc.summary(self.idata)

    def diagnostics(self, *, warn: bool = True) -> dict[str, Any]:
        """Convergence diagnostics: max r_hat, min bulk/tail ESS, divergences.

        Warns loudly (:class:`FunnelWarning`) when r_hat > 1.01, ESS < 400 or any
        divergence; the returned dict has ``ok`` and a ``message``.
        """
        self._require_fit()
        d = acc.diagnostics(self.idata)
        problems = []
        if d["r_hat_max"] > 1.01:
            problems.append(f"r_hat up to {d['r_hat_max']:.3f} (> 1.01): chains disagree")
        if d["ess_bulk_min"] < 400:
            problems.append(f"bulk ESS as low as {d['ess_bulk_min']:.0f} (< 400)")
        if d["divergences"] > 0:
            problems.append(f"{d['divergences']} divergent transitions")
        d["ok"] = not problems
        d["message"] = ("Diagnostics OK: r_hat <= 1.01, bulk ESS >= 400, no divergences." if not problems else
                        "WARNING: the model has not converged well: " + "; ".join(problems) +
                        ". Increase draws/tune, simplify the model, or check the data.")
        if problems and warn:
            warnings.warn(d["message"], FunnelWarning, stacklevel=2)
        return d

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fit to NetCDF with config, structure and data as attributes/groups.

        The file is written to a temporary name and renamed, so a failure never leaves a
        half-written file.
        """
        self._require_fit()
        assert self.data is not None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        attrs = {"funnel_config": json.dumps(self.config_dict(), sort_keys=True),
                 "funnel_hash": self.fit_hash(),
                 "funnel_parameterization": json.dumps(self.parameterization)}
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            acc.save(self.idata, tmp, attrs, {"transitions": self.data.transitions,
                                             "won_values": self.data.won_values})
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | Path, *, model_config: ModelConfig | Mapping | None = None,
             spec: FunnelSpec | Mapping | None = None) -> "FunnelModel":
        """Load a saved fit. Passing a ``model_config`` or ``spec`` that differs is an error."""
        path = Path(path)
        if not path.exists():
            raise ModelConfigError(f"{path}: no saved model there")
        idata, attrs, tables = acc.load(path)
        cfg = json.loads(attrs["funnel_config"])
        if model_config is not None:
            want = parse_config(ModelConfig, model_config, "model_config").model_dump()
            if want != cfg["model_config"]:
                raise ModelConfigError(f"{path}: saved with a different model_config:\n saved {cfg['model_config']}\n"
                                       f" given {want}\nRefit with the new config instead of loading.")
        if spec is not None and FunnelSpec.load(spec).to_dict() != cfg["spec"]:
            raise ModelConfigError(f"{path}: saved with a different funnel spec; refit instead of loading.")
        m = cls(cfg["spec"], cfg["model_config"], cfg["sampler_config"], cache_dir=False)
        m._set_data(FunnelData(tables["transitions"], tables["won_values"]))
        m.parameterization = json.loads(attrs["funnel_parameterization"])
        if m.fit_hash() != attrs["funnel_hash"]:
            raise ModelConfigError(f"{path}: the stored hash does not match its config and data; the file "
                                   "is corrupt or from another version. Refit.")
        m.idata = idata
        return m
