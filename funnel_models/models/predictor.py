"""The linear predictor of the Markov funnel model, written once.

The same function builds the log-odds in the PyMC graph (``xp = pytensor.tensor``,
symbolic parameters), in the predictive checks and the pointwise log-likelihood, and in
:meth:`FunnelModel.posterior_funnel` (``xp = numpy``, parameters with a leading axis of
posterior draws). For observation ``i`` and non-reference destination ``j`` with
parameter slot ``s = slot[i, j]``::

    eta[i, j] = intercept[s]
              + sum over factors f of effect_f[s, level_f[i]]      partial pooling
              + walk[month[i], s]                                  smooth drift (optional)
              + sum over change points c of active[i, c] * change_c[s]
              + age[age_bucket[i], s]                              time in stage (optional)
              + month[month[i], s]                                 month shocks (optional)
              + season[season[i], s]                               seasonality (optional)
              + offset[i, j]                                       known log-odds (optional)

The reference destination (staying; the first stage for new leads) has log-odds 0, padded
destinations get a large negative value, and the destination probabilities are the
softmax of ``[0, eta]``.

``theta`` holds the *effective* parameters (scales already applied; the PyMC model
defines them as deterministics), so this module has no priors and no transforms.

Examples
--------
>>> import numpy as np
>>> design = {"slot": np.array([[0, 1], [2, 3]]), "month": np.zeros(2, int), "age": np.zeros(2, int),
...           "season": np.zeros(2, int), "active": np.zeros((2, 0))}
>>> theta = {"intercept": np.log(np.array([[1.0, 2.0, 3.0]]))}
>>> probabilities(theta, design, n_slots=3)[0].round(3).tolist()
[[0.25, 0.25, 0.5], [0.25, 0.75, 0.0]]
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["linear_predictor", "log_probabilities", "probabilities", "pointwise_loglik", "COMPONENTS", "PAD_LOGIT"]

#: Optional components of ``theta`` besides the intercept, factor effects and change points.
COMPONENTS = ("walk", "age", "month", "season")
#: Log-odds of padded destinations (zero probability after the softmax).
PAD_LOGIT = -1e4


def _pad_last(xp: ModuleType, a: Any) -> Any:
    """Append one zero along the last axis (the padding slot)."""
    return xp.concatenate([a, xp.zeros_like(a[..., :1])], axis=-1)


def _pad_second_last(xp: ModuleType, a: Any) -> Any:
    """Append one zero row along the second-last axis (the padding slot of an effect)."""
    return xp.concatenate([a, xp.zeros_like(a[..., :1, :])], axis=-2)


def _gather(xp: ModuleType, table: Any, rows: Any, cols: Any) -> Any:
    """``table[..., rows, cols]`` through one flat index.

    PyTensor turns a take with one flat index into a compiled 1-D gather (and its gradient
    into a 1-D scatter-add); two paired index arrays fall back to a slow Python op.
    """
    flat = rows * table.shape[-1] + cols
    if xp is np:
        return table.reshape(table.shape[:-2] + (-1,))[..., flat]
    return table.flatten()[flat]


def linear_predictor(theta: Mapping[str, Any], design: Mapping[str, Any], *, n_slots: int,
                     factors: Sequence[str] = (), n_change: int = 0, xp: ModuleType = np) -> Any:
    """Log-odds against the reference destination, shape (..., n_obs, Dmax - 1).

    Parameters
    ----------
    theta : mapping
        ``intercept`` (..., n_slots); ``effect_<f>`` (..., n_slots, levels) per factor;
        ``change_<c>`` (..., n_slots) per change point; optional ``walk``/``month``
        (..., months, n_slots), ``age`` (..., buckets, n_slots), ``season``
        (..., positions, n_slots). A missing optional component counts as zero.
    design : mapping
        ``slot`` (n_obs, Dmax - 1), ``level_<f>``, ``month``, ``age``, ``season``
        (n_obs,), ``active`` (n_obs, n_change), optional ``offset`` (n_obs, Dmax - 1);
        arrays or PyTensor variables.
    n_slots : int
        Number of parameter slots; ``slot == n_slots`` marks padding.
    factors : sequence of str
        Factor keys (``effect_<f>`` / ``level_<f>`` suffixes).
    n_change : int
        Number of change points.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    """
    slot = design["slot"]
    eta = _pad_last(xp, theta["intercept"])[..., slot]
    for f in factors:
        eff = _pad_second_last(xp, theta[f"effect_{f}"])
        eta = eta + _gather(xp, eff, slot, design[f"level_{f}"][:, None])
    for c in range(n_change):
        eta = eta + design["active"][:, c][:, None] * _pad_last(xp, theta[f"change_{c}"])[..., slot]
    for name, index in (("walk", "month"), ("age", "age"), ("month", "month"), ("season", "season")):
        if theta.get(name) is not None:
            eta = eta + _gather(xp, _pad_last(xp, theta[name]), design[index][:, None], slot)
    if design.get("offset") is not None:
        eta = eta + design["offset"]
    return xp.where(xp.equal(slot, n_slots), PAD_LOGIT, eta)


def log_probabilities(theta: Mapping[str, Any], design: Mapping[str, Any], *, n_slots: int,
                      factors: Sequence[str] = (), n_change: int = 0, xp: ModuleType = np) -> Any:
    """Log destination probabilities, shape (..., n_obs, Dmax): log-softmax of ``[0, eta]``."""
    eta = linear_predictor(theta, design, n_slots=n_slots, factors=factors, n_change=n_change, xp=xp)
    logits = xp.concatenate([xp.zeros_like(eta[..., :1]), eta], axis=-1)
    if xp is np:
        m = logits.max(-1, keepdims=True)
        return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    import pytensor.tensor as pt
    return pt.special.log_softmax(logits, axis=-1)


def probabilities(theta: Mapping[str, np.ndarray], design: Mapping[str, np.ndarray], *, n_slots: int,
                  factors: Sequence[str] = (), n_change: int = 0) -> np.ndarray:
    """Destination probabilities (NumPy), shape (..., n_obs, Dmax)."""
    p = np.exp(log_probabilities(theta, design, n_slots=n_slots, factors=factors, n_change=n_change))
    return np.where(np.concatenate([np.zeros_like(design["slot"][:, :1]), design["slot"]], axis=1) == n_slots,
                    0.0, p)


def pointwise_loglik(theta: Mapping[str, np.ndarray], design: Mapping[str, np.ndarray], counts: np.ndarray, *,
                     n_slots: int, factors: Sequence[str] = (), n_change: int = 0,
                     chunk: int = 100) -> np.ndarray:
    """Multinomial log-likelihood of every observation per draw, shape (draws, n_obs).

    Includes the multinomial coefficient, so values are comparable between models fitted
    on the same observations. Draws are processed in chunks to bound memory.
    """
    from scipy.special import gammaln
    n = counts.sum(-1)
    coef = gammaln(n + 1.0) - gammaln(counts + 1.0).sum(-1)
    D = next(iter(theta.values())).shape[0]
    out = np.empty((D, counts.shape[0]))
    for a in range(0, D, chunk):
        part = {k: v[a:a + chunk] for k, v in theta.items() if v is not None}
        lp = log_probabilities(part, design, n_slots=n_slots, factors=factors, n_change=n_change)
        out[a:a + chunk] = coef + np.where(counts > 0, counts * lp, 0.0).sum(-1)
    return out
