"""The demo generator: deterministic, realistic, and consistent with its stated truth."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import FunnelWarning


def test_seeded_and_deterministic():
    a, b = demo_data(seed=3, months=6), demo_data(seed=3, months=6)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not demo_data(seed=4, months=6).history.equals(a.history)


def test_shape_of_the_demo():
    d = demo_data()
    h = d.history
    assert d.spec.n_stages == 6 and set(h["region"]) == {"North", "South", "East", "West"}
    assert set(h["channel"]) == {"Web", "Partner", "Outbound"}
    assert h["entered_at"].min() >= pd.Timestamp("2023-01-01") and h["entered_at"].max() < d.cutoff + pd.Timedelta(days=1)
    months = derive.month_start(h.groupby("lead_id")["entered_at"].min()).value_counts().sort_index()
    assert len(months) == 36 and months.max() > 1.3 * months.min()  # seasonal volume
    _, per_stage = derive.skipped_stages(h, d.spec)
    assert per_stage["skipped_by"].sum() > 0  # some skipping
    assert (h.loc[h.stage == "WON", "value"] > 0).all()


def test_empirical_rates_match_truth():
    """Without segment effects or a process change, the empirical monthly moves of every
    stage match the stated true transition matrix."""
    d = demo_data(seed=11, leads_per_month=600, change_month=None, effect_scale=0.0)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        tr = derive.transitions(snaps, d.spec)
    P = d.truth.transition_matrix()
    for k, code in enumerate(d.spec.codes):
        row = tr[tr.from_stage == code].groupby("to_stage")["n"].sum()
        emp = row / row.sum()
        for dest, p in emp.items():
            j = d.spec.states.index(dest)
            assert abs(p - P[k, j]) < 0.02, (code, dest, p, P[k, j])
    np.testing.assert_allclose(P.sum(1), 1.0)
