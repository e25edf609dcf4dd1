"""Sampling a PyMC graph with nutpie (default) or PyMC's NUTS.

nutpie compiles the graph with JAX by default: the data are frozen into the compiled
function, which compiles in seconds (ARCHITECTURE.md has the measurements against the
Numba backend, whose compile took most of a fit's time). With ``backend: numba`` the
compiled model is kept in this process by a key that changes whenever the graph would,
and later fits with other data of the same shape only swap the data in
(``CompiledModel.with_data``).
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from .config import SamplerConfig
from .idata_access import quiet_import

__all__ = ["sample_compiled", "compiled_count"]

#: Compiled nutpie models of this process, by graph key.
_COMPILED: dict[str, Any] = {}


def compiled_count() -> int:
    """How many graphs this process has compiled (progress output reports reuse with it)."""
    return len(_COMPILED)


def sample_compiled(key: str, build: Callable[[], Any], values: Mapping[str, np.ndarray],
                    config: SamplerConfig, progress: bool) -> tuple[Any, dict[str, float]]:
    """Sample the graph ``build()`` with data ``values``; returns (idata, timings).

    Timings: ``compile`` (0 when the compiled graph was reused) and ``sampling`` seconds,
    plus ``reused`` (1.0 when no compilation was needed).
    """
    t0 = time.perf_counter()
    if config.sampler == "pymc":
        return _sample_pymc(build(), values, config, progress, t0)
    import nutpie
    if config.backend == "jax":
        model = build()
        with model:
            pm = quiet_import("pymc")
            pm.set_data({k: v for k, v in values.items() if k in model.named_vars})
        compiled, reused = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax"), False
    else:
        compiled = _COMPILED.get(key)
        reused = compiled is not None
        if compiled is None:
            compiled = nutpie.compile_pymc_model(build())
            _COMPILED[key] = compiled
        compiled = compiled.with_data(**{k: v for k, v in values.items() if k in compiled.shared_data})
    t1 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=config.draws, tune=config.tune, chains=config.chains,
                          cores=min(2, config.chains), seed=config.seed, progress_bar=progress,
                          low_rank_modified_mass_matrix=config.low_rank, target_accept=config.target_accept,
                          save_warmup=False)
    return idata, {"compile": t1 - t0, "sampling": time.perf_counter() - t1, "reused": float(reused)}


def _sample_pymc(model: Any, values: Mapping[str, np.ndarray], config: SamplerConfig, progress: bool,
                 t0: float) -> tuple[Any, dict[str, float]]:
    pm = quiet_import("pymc")
    with model:
        pm.set_data({k: v for k, v in values.items() if k in model.named_vars})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Potential.*")
            idata = pm.sample(draws=config.draws, tune=config.tune, chains=config.chains,
                              cores=min(2, config.chains), random_seed=config.seed,
                              target_accept=config.target_accept, progressbar=progress,
                              compute_convergence_checks=False)
    return idata, {"compile": 0.0, "sampling": time.perf_counter() - t0, "reused": 0.0}
