"""Which geometry the sampler gets: the data-driven centered / non-centered choices."""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models.models.config import ModelConfig
from funnel_models.models.monthfx import MonthTotals, centered_rows


def _totals(shock_sd: tuple[float, ...], n: int, months: int, seed: int) -> tuple[MonthTotals, np.ndarray]:
    """Monthly totals of rows with two destinations (stay / leave) whose log-odds of
    leaving get a Normal(0, shock_sd[row]) shock each month; expected share 20%."""
    rng = np.random.default_rng(seed)
    rows, counts = [], []
    base = np.log(0.2 / 0.8)
    for r, sd in enumerate(shock_sd):
        p = 1.0 / (1.0 + np.exp(-(base + sd * rng.standard_normal(months))))
        leave = rng.binomial(n, p)
        counts += [[n - k, k] for k in leave]
        rows += [r] * months
    counts = np.array(counts)
    k = len(rows)
    totals = MonthTotals(counts=counts, slot=np.array(rows)[:, None], row=np.array(rows),
                         month=np.tile(np.arange(months), len(shock_sd)), season=np.zeros(k, np.int64),
                         n_slots=len(shock_sd), cell=np.arange(k))
    return totals, np.tile([0.8, 0.2], (k, 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_months_that_really_differ_are_centered_and_binomial_noise_is_not(seed):
    # row 0: shocks of 0.4 on the log-odds, 5,000 moves a month (the data pin each month);
    # row 1: no shocks at all (only binomial noise); a row with shocks of 0.4 but 10 moves a month
    totals, expected = _totals((0.4, 0.0), n=5000, months=12, seed=seed)
    small, small_expected = _totals((0.4,), n=10, months=24, seed=seed)
    auto = ModelConfig()
    assert centered_rows(totals, expected, auto, 2).tolist() == [True, False]
    assert centered_rows(small, small_expected, auto, 1).tolist() == [False]


def test_a_fixed_parameterization_is_obeyed():
    totals, expected = _totals((0.4, 0.0), n=5000, months=6, seed=0)
    assert centered_rows(totals, expected, ModelConfig(parameterization="non_centered"), 2).tolist() == [False, False]
    assert centered_rows(totals, expected, ModelConfig(parameterization="centered"), 2).tolist() == [True, True]


def test_scaled_normal_has_the_same_prior_in_both_geometries():
    pm = pytest.importorskip("pymc")
    import pytensor.tensor as pt

    from funnel_models.models.graph import scaled_normal
    scale = np.array([0.3, 2.0])
    with pm.Model(coords={"k": [0, 1], "s": [0, 1]}) as model:
        x = pm.Deterministic("x", scaled_normal(pm, pt, "z", pt.as_tensor(scale), np.array([True, False]), ("k", "s")))
    draws = pm.draw(x, draws=20_000, random_seed=np.random.default_rng(5))
    assert np.allclose(draws.std(axis=(0, 1)), scale, rtol=0.03)
    # the free variable is the effect itself where centered, a standard normal elsewhere
    free = pm.draw(model["z"], draws=20_000, random_seed=np.random.default_rng(6))
    assert np.allclose(free.std(axis=(0, 1)), [0.3, 1.0], rtol=0.03)


def test_the_better_fit_has_fewer_divergences_then_a_lower_r_hat():
    from funnel_models.models.base import Diagnostics
    def d(div, rhat):
        return Diagnostics(ok=False, message="", divergences=div, r_hat_max=rhat)
    assert d(0, 1.05).better_than(d(1, 1.00))
    assert d(1, 1.01).better_than(d(1, 1.02))
    assert not d(1, 1.02).better_than(d(1, 1.02))        # a tie keeps the first fit
