"""Recovery against truth that is not the model's own (real sampling; ``slow``).

:mod:`funnel_models.datasets.coldleads` breaks every assumption the Markov model makes:
hazards decay smoothly with the months in stage (the model uses age buckets), losses are
never recorded (leads drop out silently), one log-normal shock moves every stage each month
(the model has one shock per move), and the inflow is seasonal and growing. The model must
still recover what a manager asks about: the chance that a new lead is won within a given
number of months, per segment, inside its 90% intervals about 90% of the time.
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


@pytest.mark.parametrize("seed", [1, 2])
def test_win_probabilities_are_recovered(seed, tmp_path):
    d, m = _fit(seed, tmp_path)
    diag = m.diagnostics(warn=False)
    assert diag.ok, diag.message
    assert m.variant.time_in_stage, m.selection          # the decay is real: LOO must want it
    inside = []
    for source in d.truth.source_share:
        cdf = m.posterior_funnel({"source": source}).cycle_time_cdf(max(HORIZONS) + 1)
        truth = d.truth.win_within(max(HORIZONS) + 1, source=source, n=100_000, seed=seed)
        for h in HORIZONS:
            lo, hi = np.quantile(cdf[:, h], [0.05, 0.95])
            inside.append(lo <= truth[h] <= hi)
            print(f"seed {seed} {source:9s} h={h:2d}: truth {truth[h]:.3f} model [{lo:.3f}, {hi:.3f}]")
    share = float(np.mean(inside))
    print(f"seed {seed}: {sum(inside)} of {len(inside)} true values inside the 90% intervals ({share:.0%})")
    assert share >= 0.75
