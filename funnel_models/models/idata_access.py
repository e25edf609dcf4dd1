"""The only module that touches ArviZ ``InferenceData`` internals.

Moving to ArviZ 1.x (DataTree) later means changing these few functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["quiet_import", "attach", "draws", "has", "n_draws", "arrays", "summary", "diagnostics", "save", "load", "var_names"]

_TABLE_PREFIX = "funnel_table_"


def quiet_import(name: str) -> Any:
    """Import ``pymc`` or ``arviz`` without ArviZ's notice about its coming 1.x refactor.

    Our access to ArviZ goes through this module, so the notice says nothing actionable to
    our users; it is silenced here, at the import, instead of in a global warning filter.
    """
    import importlib
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="\nArviZ is undergoing a major refactor", category=FutureWarning)
        return importlib.import_module(name)


def var_names(idata: Any) -> list[str]:
    """Names of the posterior variables."""
    return list(idata.posterior.data_vars)


def has(idata: Any, name: str) -> bool:
    """Whether the posterior has a variable ``name``."""
    return name in idata.posterior.data_vars


def n_draws(idata: Any) -> int:
    """Number of posterior draws, chains stacked."""
    return int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])


def arrays(idata: Any) -> dict[str, np.ndarray]:
    """Every posterior variable as an array (for integrity digests)."""
    return {k: idata.posterior[k].to_numpy() for k in idata.posterior.data_vars}


def attach(idata: Any, name: str, other: Any, source: str) -> None:
    """Add ``other``'s posterior variable ``source`` to ``idata``'s posterior as ``name``
    (both must have the same chains and draws)."""
    da = other.posterior[source]
    da = da.rename({d: f"{name}_{d}" for d in da.dims if d not in ("chain", "draw")})
    idata.posterior[name] = da.assign_coords(chain=idata.posterior["chain"], draw=idata.posterior["draw"])


def draws(idata: Any, name: str, *, thin: int | None = None) -> np.ndarray:
    """Posterior draws of ``name`` with chains stacked: shape (chains*draws, ...).

    ``thin`` keeps every ``thin``-th draw of each chain (chains stay in blocks of equal size).
    """
    arr = idata.posterior[name].to_numpy()
    if thin:
        arr = arr[:, ::thin]
    return arr.reshape((-1,) + arr.shape[2:])


def summary(idata: Any) -> pd.DataFrame:
    """``arviz.summary`` of the posterior as a DataFrame."""
    az = quiet_import("arviz")
    return az.summary(idata, round_to=None)


#: Endings of the sampler's unconstrained copies of a variable that are monotone in it
#: (log of a scale, log-odds, interval transform): rank-normalized r_hat and bulk / tail ESS
#: do not change under a monotone map, so these copies would only repeat their variable's.
_MONOTONE_COPIES = ("_log__", "_logodds__", "_interval__")


def diagnostics(idata: Any, known: Mapping[str, tuple[float, float, float]] | None = None,
                skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Max r_hat, min bulk and tail ESS, divergences and draws.

    ``known`` holds (max r_hat, min bulk ESS, min tail ESS) of variables already checked
    (ArviZ takes seconds for a posterior of a few thousand values); the result's
    ``variables`` holds them for every variable, to pass on. Variables named in ``skip``
    (deterministic functions of checked ones) and the monotone unconstrained copies are
    not checked.
    """
    az = quiet_import("arviz")
    per = {k: v for k, v in (known or {}).items() if k in idata.posterior.data_vars}
    todo = [v for v in idata.posterior.data_vars if v not in per and v not in skip and idata.posterior[v].size
            and not str(v).endswith(_MONOTONE_COPIES)]
    if todo:
        post = idata.posterior[todo]
        rhat, ess_b, ess_t = az.rhat(post), az.ess(post, method="bulk"), az.ess(post, method="tail")
        for v in todo:
            per[v] = (float(np.nanmax(rhat[v].to_numpy())), float(np.nanmin(ess_b[v].to_numpy())),
                      float(np.nanmin(ess_t[v].to_numpy())))

    def _reduce(i: int, fn: Any) -> float:
        vals = [t[i] for t in per.values()]
        return float(fn(np.array(vals))) if vals else float("nan")

    div = 0
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        div = int(idata.sample_stats["diverging"].to_numpy().sum())
    post = idata.posterior
    return {"r_hat_max": _reduce(0, np.nanmax), "ess_bulk_min": _reduce(1, np.nanmin),
            "ess_tail_min": _reduce(2, np.nanmin), "divergences": div,
            "chains": int(post.sizes["chain"]), "draws": int(post.sizes["draw"]), "variables": per}


def _to_dataset(df: pd.DataFrame) -> Any:
    import xarray as xr
    d = df.reset_index(drop=True).copy()
    for c in d.columns:
        if not (pd.api.types.is_numeric_dtype(d[c]) or pd.api.types.is_datetime64_any_dtype(d[c])):
            d[c] = d[c].astype(object).where(d[c].notna(), "").astype(str).astype(object)
    d.index.name = "row"
    return xr.Dataset.from_dataframe(d)


def save(idata: Any, path: Path, attrs: Mapping[str, str], tables: Mapping[str, pd.DataFrame]) -> None:
    """Write idata plus attributes and small tables as extra NetCDF groups."""
    idata = idata.copy()
    idata.posterior.attrs.update(dict(attrs))
    keep = [g for g in idata.groups() if g in ("posterior", "sample_stats", "observed_data", "constant_data")]
    sub = idata.__class__(**{g: getattr(idata, g) for g in keep})
    sub.to_netcdf(str(path), engine="h5netcdf")
    for name, df in tables.items():
        _to_dataset(df).to_netcdf(str(path), mode="a", group=_TABLE_PREFIX + name, engine="h5netcdf")


def load(path: Path) -> tuple[Any, dict[str, str], dict[str, pd.DataFrame]]:
    """Inverse of :func:`save`: (idata, attrs, tables)."""
    az = quiet_import("arviz")
    import h5netcdf
    import xarray as xr

    idata = az.from_netcdf(str(path), engine="h5netcdf")
    for g in idata.groups():          # read everything now and release the file
        ds = getattr(idata, g)
        ds.load()
        ds.close()
    attrs = {k: str(v) for k, v in idata.posterior.attrs.items() if k.startswith("funnel_")}
    with h5netcdf.File(str(path), "r") as f:
        groups = [g for g in f.groups if g.startswith(_TABLE_PREFIX)]
    tables = {}
    for g in groups:
        with xr.open_dataset(str(path), group=g, engine="h5netcdf") as ds:
            df = ds.to_dataframe().reset_index(drop=True)
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype(str)
        tables[g[len(_TABLE_PREFIX):]] = df
    return idata, attrs, tables
