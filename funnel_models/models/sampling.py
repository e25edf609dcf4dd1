"""Sampling a PyMC graph with nutpie (default) or PyMC's NUTS.

nutpie compiles the graph with JAX or Numba (``sampler.backend``; ``auto`` is JAX for one
fit and Numba where a process fits several, see
:meth:`~funnel_models.models.config.SamplerConfig.for_several_fits` and the measurements in
ARCHITECTURE.md). With either backend the compiled model is kept in this process by a key
that changes whenever the graph would, and later fits of the same graph only swap their
data in (``CompiledModel.with_data``: the data are arguments of the compiled functions).
JAX needs static shapes, so its graph serves data of the same shapes; Numba's serves data
of any size. A batch of reports and a backtest fit in one process for this reason. A JAX
fit samples half of its chains in a second process (:mod:`.chainsplit`).
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from .chainsplit import (JAX_COMPILE, ChainProcessError, SecondProcess, child_seed, merge_chains,
                         processes_for, sample_options)
from .config import SamplerConfig
from .idata_access import quiet_import

__all__ = ["sample_compiled", "data_container"]

#: Compiled nutpie models of this process and the names of their data, by backend and graph key.
_COMPILED: dict[tuple[str, str], tuple[Any, frozenset[str]]] = {}


def data_container(pm: Any, name: str, value: np.ndarray, static_shape: bool) -> Any:
    """``pm.Data(name, value)``, with its shape fixed when ``static_shape`` (JAX traces
    only graphs of known shapes; Numba's compiled graph takes data of any size)."""
    return pm.Data(name, value, shape=np.shape(value) if static_shape else None)


def sample_compiled(key: str, build: Callable[[bool], Any], values: Mapping[str, np.ndarray],
                    config: SamplerConfig, progress: bool) -> tuple[Any, dict[str, float]]:
    """Sample the graph ``build(static_shape)`` with data ``values``; returns (idata, timings).

    ``build`` makes the graph's data containers with :func:`data_container`, named as in
    ``values``, passing ``static_shape`` on. ``key`` must change whenever the graph would,
    except for the values of those containers; their types (and, for JAX, their shapes)
    are added to it here.

    Timings: ``compile`` (0 when the compiled graph was reused) and ``sampling`` seconds,
    ``graphs`` (1.0), ``reused`` (1.0 when no compilation was needed) and ``split`` (1.0
    when half of the chains ran in a second process, :mod:`.chainsplit`); a fit that
    samples several graphs sums them.
    """
    t0 = time.perf_counter()
    if config.sampler == "pymc":
        return _sample_pymc(build(False), values, config, progress, t0)
    import nutpie
    static = config.compiler == "jax"
    full_key = (config.compiler, key + ";" + _shapes(values, static))
    cached = _COMPILED.get(full_key)
    reused = cached is not None
    model = None
    second = None
    own, other_seed = config.chains, child_seed(config.seed)
    if static and processes_for(config) == 2:
        # half of the chains in a second process, which compiles while this one does
        model = build(static)
        own = config.chains - config.chains // 2
        second = SecondProcess(model, config, config.chains - own, other_seed)
    try:
        if cached is None:
            compiled = nutpie.compile_pymc_model(model if model is not None else build(static),
                                                 **(JAX_COMPILE if static else {}))
            cached = _COMPILED[full_key] = (compiled, _data_names(compiled, values))
        compiled, names = cached
        compiled = compiled.with_data(**{k: v for k, v in values.items() if k in names})
        t1 = time.perf_counter()
        idata = _nutpie_sample(compiled, config, own, config.seed, static, progress)
    except BaseException:
        if second is not None:
            second.stop()
        raise
    if second is not None:
        try:
            idata = merge_chains(idata, second.result())
        except ChainProcessError as exc:
            warnings.warn(f"{exc}; sampling its chains here instead", RuntimeWarning, stacklevel=2)
            idata = merge_chains(idata, _nutpie_sample(compiled, config, config.chains - own, other_seed, static,
                                                       progress))
    return idata, {"compile": t1 - t0, "sampling": time.perf_counter() - t1, "graphs": 1.0,
                   "reused": float(reused), "split": float(second is not None)}


def _nutpie_sample(compiled: Any, config: SamplerConfig, chains: int, seed: int, static: bool,
                   progress: bool) -> Any:
    """``chains`` chains of ``compiled`` in this process.

    JAX: one sampling thread. nutpie calls the JAX function from Python for every
    gradient, so two chain threads wait on each other's interpreter lock; with one thread
    the demo's default fit sampled in 81 s instead of 113 s, same draws (ARCHITECTURE.md).
    """
    import nutpie
    return nutpie.sample(compiled, cores=1 if static else min(2, chains), progress_bar=progress,
                         **sample_options(config, chains, seed))


def _shapes(values: Mapping[str, np.ndarray], static: bool) -> str:
    """Names, types and ranks (static: shapes) of the data: a compiled graph serves data
    that match them."""
    return ";".join(f"{k}{np.shape(v) if static else np.ndim(v)}{np.asarray(v).dtype}"
                    for k, v in sorted(values.items()))


def _data_names(compiled: Any, values: Mapping[str, np.ndarray]) -> frozenset[str]:
    """The names in ``values`` that the compiled functions read (a data container the
    graph does not use is not an argument of them, and ``with_data`` refuses it)."""
    names = set()
    for name, value in values.items():
        try:
            compiled.with_data(**{name: value})
        except (KeyError, ValueError):
            continue
        names.add(name)
    return frozenset(names)


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
    return idata, {"compile": 0.0, "sampling": time.perf_counter() - t0, "graphs": 1.0, "reused": 0.0}
