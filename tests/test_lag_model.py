"""The distributed-lag model for aggregate counts: recovery on data from its own process."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.errors import FunnelDataError
from funnel_models.models.lag import LEAD_LEVEL_NOTE, LagModel
from funnel_models.data.spec import FunnelSpec

SPEC = FunnelSpec.from_dict({"stages": ["MQL", "SQL"], "won": ["WON"], "lost": ["LOST"]})


def _simulate(seed: int = 0, months: int = 48):
    """Leads enter MQL; each converts with p_k after a lag drawn from w_k (true process)."""
    rng = np.random.default_rng(seed)
    p = np.array([0.4, 0.3])
    w = np.array([[0.5, 0.3, 0.2, 0.0], [0.2, 0.5, 0.2, 0.1]])
    n = np.zeros((months, 3), dtype=int)
    n[:, 0] = rng.integers(200, 1600, months)  # volume must vary, or the lags are not identified
    for k in range(2):
        for t in range(months):
            conv = rng.binomial(n[t, k], p[k])
            lags = rng.multinomial(conv, w[k])
            for lag, c in enumerate(lags):
                if t + lag < months:
                    n[t + lag, k + 1] += c
    month = pd.date_range("2020-01-01", periods=months, freq="MS")
    rows = [(m, s, int(n[i, j])) for i, m in enumerate(month) for j, s in enumerate(["MQL", "SQL", "WON"])]
    return pd.DataFrame(rows, columns=["month", "stage", "count"]), p, w


def test_lag_model_errors():
    with pytest.raises(FunnelDataError, match="columns"):
        LagModel(SPEC)._matrix(pd.DataFrame({"month": [], "n": []}))
    short, _, _ = _simulate(months=3)
    with pytest.raises(FunnelDataError, match="needs more than"):
        LagModel(SPEC)._matrix(short)


@pytest.mark.slow
def test_lag_model_recovers_its_own_process(capsys):
    counts, p, w = _simulate()
    m = LagModel(SPEC, sampler_config={"progress": False, "seed": 1}).fit(counts)
    assert LEAD_LEVEL_NOTE in capsys.readouterr().err
    table = m.conversion_table()
    inside = (table["conversion_lo"] <= p) & (p <= table["conversion_hi"])
    assert inside.all(), table
    true_lag = (w * np.arange(4)).sum(1)
    assert np.allclose(table["mean_lag_months"], true_lag, atol=0.25)
    post = m.posterior_funnel()
    assert post.conversion().mean(0) == pytest.approx(table["conversion_mean"].to_numpy(), abs=1e-9)
