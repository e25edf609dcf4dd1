"""The month stage tells a shock common to every row from shocks of each row (real sampling).

Truth comes from a plain numpy generator of monthly totals, not from the model: three rows
(stages) whose log-odds of leaving get, each month, one shock shared by all rows and a
small one of their own (or the other way round).
"""
from __future__ import annotations

import numpy as np
import pytest

from funnel_models.models import idata_access as acc
from funnel_models.models import monthfx
from funnel_models.models.config import ModelConfig, SamplerConfig
from funnel_models.models.sampling import sample_compiled
from funnel_models.posterior import PosteriorFunnel

MONTHS, ROWS, MOVES = 30, 3, 4000


def _totals(common: float, own: float, seed: int) -> monthfx.MonthTotals:
    rng = np.random.default_rng(seed)
    shock = common * rng.standard_normal(MONTHS)[None, :] + own * rng.standard_normal((ROWS, MONTHS))
    leave = rng.binomial(MOVES, 1.0 / (1.0 + np.exp(-(np.log(0.2 / 0.8) + shock))))
    rows = np.repeat(np.arange(ROWS), MONTHS)
    k = rows.size
    return monthfx.MonthTotals(counts=np.stack([MOVES - leave.ravel(), leave.ravel()], axis=1),
                               slot=rows[:, None], row=rows, month=np.tile(np.arange(MONTHS), ROWS),
                               season=np.zeros(k, np.int64), n_slots=ROWS, cell=np.arange(k))


def _expected(totals: monthfx.MonthTotals) -> np.ndarray:
    return np.tile([0.8, 0.2], (len(totals.row), 1))


def _fit(totals: monthfx.MonthTotals, seed: int):
    offset = np.full((len(totals.row), 1), np.log(0.2 / 0.8))
    sampler = SamplerConfig(backend="jax", draws=500, tune=500, chains=2, seed=seed, progress=False)
    centered = monthfx.centered_rows(totals, _expected(totals), ModelConfig(), ROWS)
    geometry = monthfx._attempts(centered, ModelConfig(), sampler)[0][0]          # the first try, as a fit does
    build = lambda static: monthfx._graph(totals, offset, geometry, ModelConfig(), ROWS,  # noqa: E731
                                          "none", MONTHS, True, static)
    values = monthfx._month_data(monthfx._inputs(totals, offset))
    idata, _ = sample_compiled(f"test-common;{geometry.tolist()}", build, values, sampler, False)   # compiled once
    return acc.draws(idata, "sigma_common"), acc.draws(idata, "sigma_month")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_common_shock_is_found_common(seed):
    common, own = _fit(_totals(common=0.3, own=0.03, seed=seed), seed)
    lo, hi = np.quantile(common, [0.025, 0.975])
    assert lo <= 0.3 <= hi, (lo, hi)
    assert np.median(own, axis=0).max() < 0.12, np.median(own, axis=0)


def test_shocks_of_each_row_are_not_taken_for_a_common_one():
    common, own = _fit(_totals(common=0.0, own=0.3, seed=3), 3)
    assert np.median(common) < 0.12, np.median(common)
    lo, hi = np.quantile(own, [0.025, 0.975], axis=0)
    assert np.all((lo <= 0.3) & (0.3 <= hi)), (lo, hi)


def test_one_row_with_moves_has_no_common_shock():
    t = _totals(common=0.3, own=0.0, seed=4)
    assert monthfx.shares_months(t)
    one = monthfx.MonthTotals(counts=t.counts[:MONTHS], slot=t.slot[:MONTHS], row=t.row[:MONTHS],
                              month=t.month[:MONTHS], season=t.season[:MONTHS], n_slots=1, cell=np.arange(MONTHS))
    assert not monthfx.shares_months(one)


def test_the_common_shock_is_sampled_centered_only_when_it_carries_the_months():
    auto = ModelConfig()
    common = _totals(common=0.3, own=0.03, seed=5)
    own = _totals(common=0.0, own=0.3, seed=5)
    # the last entry is the common shock (each row's months differ beyond noise in both)
    assert monthfx.centered_rows(common, _expected(common), auto, ROWS).tolist() == [True] * ROWS + [True]
    assert monthfx.centered_rows(own, _expected(own), auto, ROWS).tolist() == [True] * ROWS + [False]
    first = common.month < monthfx.COMMON_CENTERED_MONTHS - 1       # fewer months: the scale is weakly identified
    short = monthfx.MonthTotals(counts=common.counts[first], slot=common.slot[first], row=common.row[first],
                                month=common.month[first], season=common.season[first], n_slots=ROWS,
                                cell=np.arange(first.sum()))
    assert not monthfx.centered_rows(short, _expected(short), auto, ROWS)[-1]


def test_funnel_fit_says_how_much_months_differ(capsys):
    from funnel_models.commands.fit import _print_months
    from funnel_models.datasets.demo import demo_data
    truth = demo_data().truth.posterior()
    K = truth.n_stages
    sd = np.zeros((1, K + 1))
    sd[0, :2] = [0.03, 0.1]                       # two rows with month effects of their own, the rest none
    _print_months(PosteriorFunnel(truth.stages, truth.rates, truth.entry, common_sd=np.array([0.24]), shock_sd=sd))
    out = capsys.readouterr().out
    # a shock of one standard deviation multiplies the odds by exp(sd): 0.24 -> 27%, 0.03 -> 3%, 0.1 -> 11%
    assert "every stage's odds together by about +/-27%" in out and "a further +/-3% to 11%" in out
    sd[0, 1] = 0.031                              # both round to 3%: said once
    _print_months(PosteriorFunnel(truth.stages, truth.rates, truth.entry, common_sd=np.array([0.24]), shock_sd=sd))
    assert capsys.readouterr().out.rstrip().endswith("by a further +/-3%")
    _print_months(truth)                          # no month effects: nothing said
    assert capsys.readouterr().out == ""
