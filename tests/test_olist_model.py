"""Real data: the Olist funnel (MQL -> WON, losses only via stale_after) fitted by channel.

The empirical rate is computed independently from the raw CSVs with the censoring-aware
estimator of a monthly chain: ``e + (1 - e) * W / (W + L)``, where ``e`` is the share of
leads won in their first-contact month, ``W`` the later wins (within 12 months) and ``L``
the leads that went 12 months without a win before the cut-off (stale, counted lost).
Leads still open at the cut-off are censored: they add no loss. A plain won/closed ratio
would over-weight fast wins of recent, censored cohorts.
"""
from __future__ import annotations

import csv
import warnings
from collections import Counter
from datetime import date, datetime

import numpy as np
import pytest

from funnel_models.errors import FunnelWarning
from funnel_models.workflow import OLIST_DIR, fit_model, load_data

pytestmark = pytest.mark.skipif(not OLIST_DIR.exists(), reason=f"Olist data not found at {OLIST_DIR}")


def _empirical() -> tuple[dict[str, float], dict[str, int], float]:
    leads = {r["mql_id"]: r for r in csv.DictReader(open(OLIST_DIR / "olist_marketing_qualified_leads_dataset.csv"))}
    won = {r["mql_id"]: r["won_date"] for r in csv.DictReader(open(OLIST_DIR / "olist_closed_deals_dataset.csv"))}
    cutoff = max(datetime.fromisoformat(w).date() for w in won.values())
    first_month, later, lost, size = Counter(), Counter(), Counter(), Counter()
    m_cut = cutoff.year * 12 + cutoff.month
    for lid, r in leads.items():
        origin = r["origin"].strip() or "unknown"
        size[origin] += 1
        first = date.fromisoformat(r["first_contact_date"])
        m_first = first.year * 12 + first.month
        lag = None
        if lid in won:
            w = datetime.fromisoformat(won[lid]).date()
            lag = w.year * 12 + w.month - m_first
        if lag is not None and lag <= 0:
            first_month[origin] += 1
        elif lag is not None and lag <= 12:
            later[origin] += 1
        elif m_cut - m_first >= 12:
            lost[origin] += 1

    def est(o: list[str]) -> float:
        n = sum(size[x] for x in o)
        e = sum(first_month[x] for x in o) / n
        W, L = sum(later[x] for x in o), sum(lost[x] for x in o)
        return e + (1 - e) * W / (W + L) if W + L else e

    rate = {o: est([o]) for o in size}
    return rate, dict(size), est(list(size))


@pytest.fixture(scope="module")
def olist_fit(tmp_path_factory):
    data = load_data("olist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        return fit_model(data, factors=["origin"], cache_dir=tmp_path_factory.mktemp("olist"),
                         sampler_config={"seed": 4})


def test_olist_win_rate_by_channel(olist_fit):
    rate, size, overall = _empirical()
    fitted = {o: olist_fit.posterior_funnel({"origin": o}).lead_win_rate() for o in olist_fit.structure.factors["origin"]}
    big = [o for o in fitted if size.get(o, 0) >= 1000]
    small = [o for o in fitted if size.get(o, 0) < 200]
    assert len(big) >= 3 and len(small) >= 2
    for o in big:  # data-rich channels: the model reproduces the empirical rate
        assert abs(fitted[o].mean() - rate[o]) < 0.02, (o, fitted[o].mean(), rate[o])
    shrunk = [abs(fitted[o].mean() - overall) < abs(rate[o] - overall) for o in small]
    print({o: (round(float(fitted[o].mean()), 3), round(rate[o], 3), size[o]) for o in fitted}, overall)
    assert all(shrunk), "small channels must be pulled toward the overall rate"
    assert olist_fit.diagnostics(warn=False)["divergences"] <= 5
