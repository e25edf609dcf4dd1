"""Funnel models: the Bayesian Markov model, quick conjugate mode and the lag model.

Use :func:`fit_model` to get a fitted (cached) model in one call.
"""
from __future__ import annotations

from .config import ChangePointConfig, ModelConfig, Priors, SamplerConfig
from .conjugate import ConjugateFunnel
from .inputs import FunnelData, prepare
from .markov import FunnelModel, default_cache_dir

__all__ = ["FunnelModel", "ConjugateFunnel", "ModelConfig", "SamplerConfig", "Priors",
           "ChangePointConfig", "FunnelData", "prepare", "default_cache_dir"]
