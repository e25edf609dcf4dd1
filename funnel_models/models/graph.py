"""The PyMC graph of the Markov funnel model: priors, effective parameters, likelihood.

Priors (scales in :class:`~funnel_models.models.config.Priors`):

- ``intercept[s] ~ Normal(0, intercept_sigma)`` per parameter slot (row x destination);
- segment effects, zero-sum over levels with one scale per factor, centered
  (``effect_<f> ~ ZeroSumNormal(sigma_<f>)``) or non-centered
  (``effect_<f> = sigma_<f> * ZeroSumNormal(1)``), ``sigma_<f> ~ HalfNormal(segment_sigma)``;
- time in stage: ``age[0] = 0``, ``age[b] = age[b-1] + sigma_age[row] * z[b]``, a random
  walk over age buckets that shrinks toward the memoryless chain (``sigma_age ~
  HalfNormal(age_sigma)``), sampled per row centered (the steps themselves) or
  non-centered (``z``) as the fit's parameterization says (:func:`scaled_normal`);
- smooth drift: ``walk[t] = sum of sigma_rw * z`` up to month ``t``;
- change points: ``change_c ~ Normal(0, change_sigma)`` on the slots of the changed row.

Month effects and seasonality are the second stage (:mod:`funnel_models.models.monthfx`).

Every effective parameter is a named deterministic (``intercept``, ``effect_<f>``, ``age``,
``walk``, ``change_<c>``), which is exactly what
:func:`funnel_models.models.predictor.linear_predictor` reads, in the graph here and in
NumPy after sampling.

The likelihood is ``sum(counts * log_softmax([0, eta]))`` over the stacked observations as
a ``pm.Potential`` (the multinomial coefficient is a constant); see ARCHITECTURE.md for
the measurement against ``pm.Multinomial``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .config import ModelConfig
from .predictor import log_probabilities
from .sampling import data_container
from .structure import Design, safe_name
from .idata_access import quiet_import

__all__ = ["Variant", "build_graph", "theta_names", "graph_data", "VARIANT_LABELS", "DATA_PREFIX", "age_key",
           "scaled_normal"]

#: Prefix of the graph's data containers (``d_counts``, ``d_slot``, ...).
DATA_PREFIX = "d_"


def graph_data(design: Design) -> dict[str, np.ndarray]:
    """Values of every data container of the graph for a design."""
    return {DATA_PREFIX + k: v for k, v in design.arrays().items()}


def age_key(source: str) -> str:
    """Key of a row's time-in-stage walk in a fit's parameterization mapping."""
    return f"time in stage: {source}"


def scaled_normal(pm: Any, pt: Any, name: str, scale: Any, centered: np.ndarray, dims: tuple[str, ...]) -> Any:
    """``scale * z`` with ``z ~ Normal(0, 1)``, sampled centered where ``centered`` is True.

    Centered, the sampler moves the product itself (``Normal(0, scale)``), which suits
    effects the data pin down; non-centered it moves ``z``, which suits effects the data
    barely inform. ``centered`` is a boolean mask broadcast against ``scale`` (for example
    one value per parameter slot), so one variable can mix both geometries.
    """
    c = pt.as_tensor(np.asarray(centered, dtype=bool))
    raw = pm.Normal(name, 0.0, pt.switch(c, scale, 1.0), dims=dims)
    return raw * pt.switch(c, 1.0, scale)


@dataclass(frozen=True)
class Variant:
    """Which optional components a fit switches on."""

    time_in_stage: bool = False
    month_effects: bool = False

    @property
    def label(self) -> str:
        """Readable name, e.g. ``"time in stage + month effects"``."""
        parts = [p for p, on in (("time in stage", self.time_in_stage), ("month effects", self.month_effects)) if on]
        return " + ".join(parts) or "memoryless"

    @property
    def size(self) -> int:
        """Number of optional components switched on (model complexity order)."""
        return int(self.time_in_stage) + int(self.month_effects)


#: Readable names of the variants.
VARIANT_LABELS = {Variant(a, m).label: Variant(a, m) for a in (False, True) for m in (False, True)}


def theta_names(design: Design, n_change: int) -> list[str]:
    """Names of the effective-parameter deterministics the predictor reads."""
    names = ["intercept"] + [f"effect_{safe_name(f)}" for f in design.factors]
    names += [f"change_{c}" for c in range(n_change)]
    return names + ["walk", "age", "month", "season"]


def _segment_effects(pm: Any, pt: Any, design: Design, config: ModelConfig, param: Mapping[str, str]) -> dict:
    out = {}
    for f in design.factors:
        fs = safe_name(f)
        sig = pm.HalfNormal(f"sigma_{fs}", config.priors.segment_sigma)
        if param.get(f) == "centered":
            out[f"effect_{fs}"] = pm.ZeroSumNormal(f"effect_{fs}", sigma=sig, dims=("move", f))
        else:
            z = pm.ZeroSumNormal(f"effectz_{fs}", sigma=1.0, dims=("move", f))
            out[f"effect_{fs}"] = pm.Deterministic(f"effect_{fs}", z * sig, dims=("move", f))
    return out


def _time_components(pm: Any, pt: Any, design: Design, config: ModelConfig, param: Mapping[str, str],
                     with_age: bool) -> dict:
    pri = config.priors
    out: dict[str, Any] = {}
    slot_row = design.slot_row
    if with_age and design.n_buckets > 1:
        sig = pm.HalfNormal("sigma_age", pri.age_sigma, dims="row")
        centered = np.array([param.get(age_key(design.rows[r].source)) == "centered" for r in slot_row])
        steps = pt.cumsum(scaled_normal(pm, pt, "agez", sig[slot_row][None, :], centered[None, :],
                                        ("age_step", "move")), axis=0)
        walk = pt.concatenate([pt.zeros((1, design.n_slots)), steps], axis=0)
        out["age"] = pm.Deterministic("age", walk, dims=("age_bucket", "move"))
    if config.time_varying and design.by_month and len(design.months) > 1:
        sig = pm.HalfNormal("sigma_rw", pri.rw_sigma)
        z = pm.Normal("rwz", 0.0, 1.0, dims=("month_step", "move"))
        walk = pt.concatenate([pt.zeros((1, design.n_slots)), pt.cumsum(z * sig, axis=0)], axis=0)
        out["walk"] = pm.Deterministic("walk", walk, dims=("months", "move"))
    return out


def build_graph(design: Design, config: ModelConfig, parameterization: Mapping[str, str], *,
                with_age: bool, static_shape: bool = False) -> Any:
    """The PyMC model of ``design``.

    Parameters
    ----------
    design : Design
    config : ModelConfig
    parameterization : mapping factor or :func:`age_key` -> "centered" | "non_centered"
    with_age : bool
        Put the time-in-stage component in the graph.
    static_shape : bool
        Fix the data's shapes (see :func:`~funnel_models.models.sampling.data_container`).
    """
    pm = quiet_import("pymc")
    import pytensor.tensor as pt

    coords: dict[str, list] = {f: list(v) for f, v in design.factors.items()}
    coords["move"] = [f"{r.source}>{d}" for r in design.rows for d in r.dest[1:]]
    coords["row"] = [r.source for r in design.rows]
    coords["months"] = [m.strftime("%Y-%m") for m in design.months] if design.by_month else ["all"]
    coords["month_step"] = coords["months"][1:]
    coords["age_bucket"] = [str(e) for e in design.age_edges]
    coords["age_step"] = coords["age_bucket"][1:]
    n_change = len(design.change_points)
    with pm.Model(coords=coords) as model:
        data = {k: data_container(pm, DATA_PREFIX + k, v, static_shape) for k, v in design.arrays().items()}
        theta: dict[str, Any] = {"intercept": pm.Normal("intercept", 0.0, config.priors.intercept_sigma, dims="move")}
        theta.update(_segment_effects(pm, pt, design, config, parameterization))
        for c, cp in enumerate(design.change_points):
            i = design.row_index(cp.stage)
            slots = design.rows[i].slots if i is not None else np.zeros(0, dtype=np.int64)
            full = pt.zeros((design.n_slots,))
            if slots.size:
                delta = pm.Normal(f"delta_{c}", 0.0, config.priors.change_sigma, shape=slots.size)
                full = pt.set_subtensor(full[slots], delta)
            theta[f"change_{c}"] = pm.Deterministic(f"change_{c}", full, dims="move")
        theta.update(_time_components(pm, pt, design, config, parameterization, with_age))
        logp = log_probabilities(theta, data, n_slots=design.n_slots,
                                 factors=[safe_name(f) for f in design.factors], n_change=n_change, xp=pt)
        pm.Potential("transition_loglik", pt.sum(data["counts"] * logp))
    return model
