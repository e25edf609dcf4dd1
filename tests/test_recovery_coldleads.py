"""Recovery against truth that is not the model's own (real sampling; ``slow``).

:mod:`funnel_models.datasets.coldleads` breaks every assumption the Markov model makes:
hazards decay smoothly with the months in stage (the model uses age buckets), losses are
never recorded (leads drop out silently), one log-normal shock moves every stage each month
(the model has one shock common to every move plus one per move; the generator has no per-move
shocks), and the inflow is seasonal and growing. The truth is the
generator's chance that a new lead is won within h months, averaged over month-shock paths.

What holds (and runs in ``.ci/run``): the model chooses time in stage, samples without
divergences, its posterior mean is within 15% (relative) of the truth at every horizon and
source, and its 90% intervals hold the truth at least 75% of the time (12 values per seed);
a memoryless chain misses the truth by 50-77% at 5 and 11 months (measured with the
conjugate model, time in stage off, both seeds). The intervals needed the month shock
common to every stage (fit revision 8): seed 2's 36 shocks average 0.973, and one shock
multiplies every stage's hazard, so a win that needs three moves is ~8% rarer in the data
than in the truth (averaged over all shock paths); with month effects per stage only, the
average month's error was independent per stage and seed 2's intervals at 3-11 months were
too narrow (an expected failure until then).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from funnel_models.datasets.coldleads import cold_leads_data
from funnel_models.errors import FunnelWarning
from funnel_models.models import FunnelModel
from funnel_models.workflow import load_data

pytestmark = pytest.mark.slow

#: Months after entry at which P(won by then) is compared (0 = the entry month).
HORIZONS = (0, 2, 5, 11)


def _fit(seed: int, tmp_path):
    d = cold_leads_data(seed=seed)
    snaps = load_data("coldleads", demo_seed=seed).snapshots()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        m = FunnelModel(d.spec, {"factors": ["source"]}, {"progress": False, "seed": seed},
                        cache_dir=tmp_path).fit(snaps)
    return d, m


@pytest.fixture(scope="module", params=[1, 2], ids=["seed1", "seed2"])
def fitted(request, tmp_path_factory):
    seed = request.param
    d, m = _fit(seed, tmp_path_factory.mktemp(f"cold{seed}"))
    rows = []
    for source in d.truth.source_share:
        cdf = m.posterior_funnel({"source": source}).cycle_time_cdf(max(HORIZONS) + 1)
        truth = d.truth.win_within(max(HORIZONS) + 1, source=source, n=100_000, seed=seed)
        for h in HORIZONS:
            lo, hi = np.quantile(cdf[:, h], [0.05, 0.95])
            rows.append((source, h, float(truth[h]), float(cdf[:, h].mean()), float(lo), float(hi)))
            print(f"seed {seed} {source:9s} h={h:2d}: truth {truth[h]:.3f} model mean {cdf[:, h].mean():.3f} "
                  f"90% [{lo:.3f}, {hi:.3f}]")
    return seed, m, rows


def test_win_probabilities_are_recovered(fitted):
    seed, m, rows = fitted
    diag = m.diagnostics(warn=False)
    assert diag.divergences == 0 and diag.r_hat_max < 1.05, diag.message
    assert m.variant.time_in_stage, m.selection          # the decay is real: LOO must want it
    for source, h, truth, mean, _, _ in rows:
        assert abs(mean - truth) <= 0.15 * truth, (seed, source, h, truth, mean)


def test_intervals_cover_the_truth(fitted):
    seed, m, rows = fitted
    assert m.diagnostics(warn=False).ok
    inside = [lo <= truth <= hi for _, _, truth, _, lo, hi in rows]
    print(f"seed {seed}: {sum(inside)} of {len(inside)} true values inside the 90% intervals")
    assert np.mean(inside) >= 0.75
