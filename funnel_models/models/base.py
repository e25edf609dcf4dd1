"""The interface every funnel model implements, and the diagnostics it reports.

Reports, the dashboard, the backtest and the CLI use only this interface: they never ask
which model they hold. A model is chosen by name (:data:`funnel_models.models.MODELS`):

=============  ===============================================================
``markov``     :class:`~funnel_models.models.markov.FunnelModel`: Bayesian Markov
               chain over (stage, months in stage), fitted with MCMC
``conjugate``  :class:`~funnel_models.models.conjugate.ConjugateFunnel`: exact
               Dirichlet-multinomial quick mode, no MCMC
``lag``        :class:`~funnel_models.models.lag.LagModel`: distributed-lag model
               for aggregate monthly counts only
=============  ===============================================================

Lifecycle (PyMC-Marketing style): the constructor validates the configuration and samples
nothing; :meth:`BaseFunnelModel.fit` returns ``self``; :meth:`posterior_funnel` gives the
draws every downstream piece consumes.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import pandas as pd

from ..data.spec import FunnelSpec
from ..posterior import PosteriorFunnel
from . import idata_access as acc

__all__ = ["BaseFunnelModel", "Diagnostics", "check_diagnostics", "fit_summary"]


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a fit.

    Attributes
    ----------
    ok : bool
        True when the answers can be trusted (r_hat <= 1.01, bulk ESS >= 400, no
        divergences; always True for exact models).
    message : str
        One sentence for reports.
    method : str
        ``"mcmc"`` or ``"exact"``.
    r_hat_max, ess_bulk_min, ess_tail_min : float
        NaN for exact models.
    divergences, chains, draws : int
    notes : tuple of str
        What the fit did on its own (e.g. a refit in the other parameterization).
    """

    ok: bool
    message: str
    method: str = "mcmc"
    r_hat_max: float = float("nan")
    ess_bulk_min: float = float("nan")
    ess_tail_min: float = float("nan")
    divergences: int = 0
    chains: int = 0
    draws: int = 0
    notes: tuple[str, ...] = ()

    def better_than(self, other: "Diagnostics") -> bool:
        """Whether this fit sampled better than ``other``: fewer divergences, then a lower r_hat."""
        return (self.divergences, self.r_hat_max) < (other.divergences, other.r_hat_max)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for summary.json)."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


#: Thresholds of :func:`check_diagnostics`.
R_HAT_MAX = 1.01
ESS_MIN = 400


def check_diagnostics(stats: Mapping[str, Any], notes: tuple[str, ...] = ()) -> Diagnostics:
    """Judge raw MCMC statistics (``r_hat_max``, ``ess_bulk_min``, ``ess_tail_min``,
    ``divergences``, ``chains``, ``draws``) against the thresholds."""
    problems = []
    if not stats["r_hat_max"] <= R_HAT_MAX:
        problems.append(f"r_hat up to {stats['r_hat_max']:.3f} (> {R_HAT_MAX}): chains disagree")
    if not stats["ess_bulk_min"] >= ESS_MIN:
        problems.append(f"bulk ESS as low as {stats['ess_bulk_min']:.0f} (< {ESS_MIN})")
    if stats["divergences"] > 0:
        problems.append(f"{stats['divergences']} divergent transitions")
    msg = (f"Diagnostics OK: r_hat <= {R_HAT_MAX}, bulk ESS >= {ESS_MIN}, no divergences." if not problems else
           "The model has not converged well: " + "; ".join(problems) +
           ". Increase draws/tune, simplify the model, or check the data.")
    return Diagnostics(ok=not problems, message=msg, method="mcmc", r_hat_max=float(stats["r_hat_max"]),
                       ess_bulk_min=float(stats["ess_bulk_min"]), ess_tail_min=float(stats["ess_tail_min"]),
                       divergences=int(stats["divergences"]), chains=int(stats["chains"]),
                       draws=int(stats["draws"]), notes=tuple(notes))


def fit_summary(info: Mapping[str, float]) -> str:
    """What one fit did, in words, from a model's :meth:`BaseFunnelModel.fit_info`: loaded
    from the fit cache, or how many graphs it compiled and reused, and the seconds spent."""
    if "cache_load" in info:
        return "loaded from the fit cache"
    graphs, reused = int(info.get("graphs", 0)), int(info.get("reused", 0))
    if not graphs:
        return "fitted without a sampler"
    done = [f"compiled {graphs - reused} graph(s) in {info.get('compile', 0.0):.1f} s"] if graphs > reused else []
    done += [f"reused {reused} compiled graph(s)"] if reused else []
    split = int(info.get("split", 0))
    both = f" ({split} of them on two processes)" if split else ""
    return f"{', '.join(done)}; sampled {info.get('sampling', 0.0):.0f} s{both}"


class BaseFunnelModel(abc.ABC):
    """What every funnel model offers (see the module docstring).

    Subclasses set :attr:`name` and :attr:`description` and implement the abstract
    methods. ``spec`` is the funnel; ``factors`` the segment factors the model answers for.
    """

    #: Registry name (``markov``, ``conjugate``, ``lag``).
    name: ClassVar[str]
    #: One line for reports, e.g. "Bayesian Markov model (MCMC)".
    description: ClassVar[str]

    spec: FunnelSpec
    #: (posterior, statistics of its variables) of the last :meth:`_sampler_stats`.
    _stats: tuple[Any, dict[str, tuple[float, float, float]]] | None = None

    @abc.abstractmethod
    def fit(self, data: Any, *, progress: bool = False) -> "BaseFunnelModel":
        """Fit on the data (the shapes a model accepts are in its docstring); returns self."""

    @abc.abstractmethod
    def posterior_funnel(self, segment: Mapping[str, str] | None = None, month: Any = None, *,
                         draws: int | None = None, seed: int = 0) -> PosteriorFunnel:
        """Posterior draws of the monthly funnel for a segment (default: all) and month
        (default: the last fitted month); ``draws`` thins to that many draws."""

    @abc.abstractmethod
    def diagnostics(self, *, warn: bool = True) -> Diagnostics:
        """How far the answers can be trusted (warns loudly when they cannot)."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the fit to ``path`` atomically; returns the path."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> "BaseFunnelModel":
        """Read a fit written by :meth:`save`."""

    @abc.abstractmethod
    def segments(self) -> dict[str, list[str]]:
        """Segment factor -> levels the model can answer for (empty when unsegmented)."""

    def summary(self, segment: Mapping[str, str] | None = None, level: float = 0.9) -> pd.DataFrame:
        """Per-stage table: conversion, win rate, stall, with central intervals."""
        return self.posterior_funnel(segment).stage_table(level)

    def pipeline(self, data: Any) -> pd.DataFrame:
        """The open pipeline at the cut-off of ``data`` (a :class:`funnel_models.workflow.LoadedData`):
        one row per open lead with its stage and age. Models of aggregate counts estimate it."""
        return data.pipeline()

    def change_point_effects(self) -> pd.DataFrame:
        """Before/after conversion at each configured change point (empty without any)."""
        return pd.DataFrame(columns=["change", "stage", "month", "before_mean", "after_mean", "uplift_mean",
                                     "uplift_lo", "uplift_hi", "p_improved"])

    def describe(self) -> str:
        """Which model produced the numbers, in one line (for reports and backtests)."""
        return self.description

    def _sampler_stats(self, idata: Any) -> dict[str, Any]:
        """Sampler statistics of a fitted posterior (:func:`idata_access.diagnostics`), each
        variable's computed once: the refit check, the report and its sections each ask,
        the month stage adds variables to the posterior later, and ArviZ takes seconds."""
        known = self._stats[1] if self._stats is not None and self._stats[0] is idata else {}
        stats = acc.diagnostics(idata, known)
        self._stats = (idata, stats["variables"])
        return stats

    def fit_info(self) -> dict[str, Any]:
        """What the last fit did: timings, whether it came from the cache, notes."""
        return dict(getattr(self, "timings", {}))
