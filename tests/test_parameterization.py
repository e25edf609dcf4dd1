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
    # the last entry is the month shock common to every row: row 0's own shocks are not one
    assert centered_rows(totals, expected, auto, 2).tolist() == [True, False, False]
    assert centered_rows(small, small_expected, auto, 1).tolist() == [False, False]


def test_a_fixed_parameterization_is_obeyed():
    totals, expected = _totals((0.4, 0.0), n=5000, months=6, seed=0)
    assert centered_rows(totals, expected, ModelConfig(parameterization="non_centered"), 2).tolist() == [False] * 3
    assert centered_rows(totals, expected, ModelConfig(parameterization="centered"), 2).tolist() == [True] * 3


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


def _verdict(ok: bool, r_hat: float, divergences: int = 0):
    from funnel_models.models.base import Diagnostics
    return Diagnostics(ok=ok, message="ok" if ok else f"r_hat {r_hat}", method="mcmc", r_hat_max=r_hat,
                       ess_bulk_min=900.0, ess_tail_min=900.0, divergences=divergences, chains=4, draws=1000)


@pytest.mark.parametrize("careful_passes", [True, False])
def test_a_fit_failing_in_both_geometries_is_sampled_again_carefully(monkeypatch, careful_passes):
    from funnel_models.models.config import ModelConfig, SamplerConfig
    from funnel_models.models.graph import Variant
    from funnel_models.models.markov import FunnelModel
    model = FunnelModel.__new__(FunnelModel)
    model.model_config, model.sampler_config = ModelConfig(), SamplerConfig()
    model.parameterization, model.variant = {"region": "centered"}, Variant(True, False)
    model.notes, model.idata = [], "first"
    verdicts = {"first": _verdict(False, 1.015, 1), "fit1": _verdict(False, 1.02, 2),
                "fit2": _verdict(True, 1.004) if careful_passes else _verdict(False, 1.03, 4)}
    samplers: list = []

    def sample(variants, show, sampler=None):
        samplers.append(sampler)
        return {variants[0]: f"fit{len(samplers)}"}
    monkeypatch.setattr(model, "_sample", sample)
    monkeypatch.setattr(model, "diagnostics", lambda warn=True: verdicts[model.idata])
    model._refit_if_needed(False)
    assert samplers[0] is None                                       # the other geometry: the file's sampler
    assert (samplers[1].tune, samplers[1].target_accept) == (1000, 0.95)
    assert model.parameterization == {"region": "centered"}           # the first geometry was the better one
    assert model.idata == ("fit2" if careful_passes else "first")
    assert "target acceptance 0.95" in model.notes[-1]
