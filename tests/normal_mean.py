"""A normal mean with a known posterior: truth for the sampling tests.

``y_i ~ Normal(mu, 1)`` with ``mu ~ Normal(0, PRIOR_SD)``; the posterior of ``mu`` is
normal with the mean and standard deviation :func:`posterior` gives, so a sampler's
draws are checked against arithmetic, not against another run of our code.
"""
from __future__ import annotations

import numpy as np

from funnel_models.models.sampling import data_container

PRIOR_SD = 10.0


def graph(y: np.ndarray, static: bool):
    """The PyMC graph, its data ``y`` in a data container (static shape for JAX)."""
    import pymc as pm
    with pm.Model() as model:
        data = data_container(pm, "y", y, static)
        mu = pm.Normal("mu", 0.0, PRIOR_SD)
        pm.Potential("lik", -0.5 * ((data - mu) ** 2).sum())
    return model


def posterior(y: np.ndarray) -> tuple[float, float]:
    """Exact posterior mean and sd of ``mu``."""
    precision = len(y) + PRIOR_SD ** -2
    return float(y.sum() / precision), float(precision ** -0.5)
