"""Funnel models behind one interface (:class:`BaseFunnelModel`), chosen by name.

=============  ==================================================================
``markov``     :class:`FunnelModel`: Bayesian Markov chain over (stage, months in
               stage), MCMC with nutpie; partial pooling of segments
``conjugate``  :class:`ConjugateFunnel`: exact quick mode, no MCMC
``lag``        :class:`LagModel`: aggregate monthly counts only
=============  ==================================================================

Use :func:`make_model` (or :func:`funnel_models.workflow.fit_model`) rather than the
classes, so that the choice stays a setting.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..data.spec import FunnelSpec
from ..errors import ModelConfigError
from .base import BaseFunnelModel, Diagnostics
from .config import ChangePointConfig, ModelConfig, Priors, SamplerConfig
from .conjugate import ConjugateFunnel
from .fitcache import default_cache_dir
from .inputs import FunnelData, prepare
from .lag import LagModel
from .markov import FunnelModel

__all__ = ["BaseFunnelModel", "Diagnostics", "FunnelModel", "ConjugateFunnel", "LagModel", "MODELS",
           "make_model", "ModelConfig", "SamplerConfig", "Priors", "ChangePointConfig", "FunnelData", "prepare",
           "default_cache_dir"]

#: Model name -> class.
MODELS: dict[str, type[BaseFunnelModel]] = {"markov": FunnelModel, "conjugate": ConjugateFunnel, "lag": LagModel}


def make_model(name: str, spec: FunnelSpec | Mapping | str, model_config: ModelConfig | Mapping | None = None,
               sampler_config: SamplerConfig | Mapping | None = None, *,
               cache_dir: str | Path | bool | None = None) -> BaseFunnelModel:
    """A model by name (``markov``, ``conjugate`` or ``lag``), not yet fitted."""
    try:
        cls: Any = MODELS[name]
    except KeyError:
        raise ModelConfigError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return cls(spec, model_config, sampler_config, cache_dir=cache_dir)
