"""Parameter recovery on the demo data with known truth (real nutpie sampling).

Marked ``slow``; ``.ci/run`` runs them as its model-recovery subset.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import FunnelWarning
from funnel_models.models import FunnelModel
from funnel_models.models import idata_access

pytestmark = pytest.mark.slow


def _coverage(model, truth) -> dict[str, np.ndarray]:
    """Booleans: is the truth inside the 90% interval, per quantity kind."""
    last = model.design.months[-1]
    post = model.posterior_funnel(month=last)
    true = truth.posterior(month=last)
    out = {}
    for name in ("conversion", "expected_stall"):
        d = getattr(post, name)()
        lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
        t = getattr(true, name)()[0]
        out[name] = (lo <= t) & (t <= hi)
    eff = model.segment_effects()
    eff = eff[eff["source"] != "ENTRY"]
    true_eff = np.array([truth.effects[f][lvl] if dest != "LOST" else 0.0
                         for f, lvl, dest in zip(eff["factor"], eff["level"], eff["dest"])])
    out["segment_effects"] = ((eff["lo"] <= true_eff) & (true_eff <= eff["hi"])).to_numpy()
    return out


def test_recovery_on_demo_defaults(tmp_path):
    d = demo_data()  # default settings: 36 months, 6 stages, region x channel, process change
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    cfg = {"factors": ["region", "channel"], "change_points": [{"stage": "DEMO", "month": "2025-01"}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        m = FunnelModel(d.spec, cfg, {"progress": False, "seed": 11}, cache_dir=tmp_path).fit(snaps)
    diag = m.diagnostics(warn=False)
    assert diag.divergences == 0 and diag.r_hat_max <= 1.02
    # the demo is made by the memoryless chain without month effects: time in stage must not
    # be chosen; month effects may be kept as a tie (ELPD within 4), but then their fitted
    # month-to-month spread must be near the truth, zero
    assert not m.variant.time_in_stage, m.selection
    if m.variant.month_effects:
        spread = np.median(idata_access.draws(m.idata, "m2_sigma_month"), axis=0)
        common = float(np.median(idata_access.draws(m.idata, "m2_sigma_common")))
        print("fitted month-to-month spread (posterior medians per row):", spread.round(3), "common:", round(common, 3))
        assert spread.max() < 0.15 and common < 0.15, (spread, common)
    cov = _coverage(m, d.truth)
    allcov = np.concatenate(list(cov.values()))
    print({k: f"{v.mean():.2f} of {v.size}" for k, v in cov.items()}, f"overall {allcov.mean():.3f}")
    assert allcov.mean() >= 0.85
    for k, v in cov.items():
        assert v.mean() >= 0.6, k
    change = m.change_point_effects().iloc[0]
    assert change["p_improved"] > 0.95
    true_before = d.truth.posterior(month="2024-12").conversion()[0, 3]
    true_after = d.truth.posterior(month="2025-01").conversion()[0, 3]
    assert change["uplift_lo"] <= true_after - true_before <= change["uplift_hi"]


def test_recovery_with_time_variation(tmp_path):
    """The random-walk model must not invent drift: the truth is flat and homogeneous."""
    d = demo_data(seed=5, months=24, leads_per_month=300, change_month=None, effect_scale=0.0)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        m = FunnelModel(d.spec, {"time_varying": True, "time_in_stage": "off", "month_effects": "off"},
                        {"progress": False, "seed": 2}, cache_dir=tmp_path).fit(snaps)
    assert m.diagnostics(warn=False).divergences < 10
    for month in (m.design.months[2], m.design.months[-1]):
        post = m.posterior_funnel(month=month)
        truth = d.truth.posterior(month=month)
        lo, hi = np.quantile(post.conversion(), [0.05, 0.95], axis=0)
        inside = (lo <= truth.conversion()[0]) & (truth.conversion()[0] <= hi)
        assert inside.mean() >= 0.8
