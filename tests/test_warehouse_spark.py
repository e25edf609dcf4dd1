"""Transition counts on Spark ``local[2]`` (Ibis' PySpark backend) equal the pandas derive path.

Many random histories with disjoint lead ids are stacked into one table per case, so each case
is one Spark query (transition counts add up over leads). Marked ``spark``.
"""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import spark_table
from crm_cases import crm_spec, normalise, pandas_transitions, random_history
from funnel_models.data.warehouse import warehouse_transitions

pytestmark = pytest.mark.spark

CASES = [  # (stale_after, by, cut-off days before the last row)
    (None, [], 0),
    (None, ["region", "channel"], 40),
    (3, ["region"], 75),
]


@pytest.mark.parametrize("stale,by,back", CASES)
def test_spark_matches_pandas(spark, stale, by, back):
    h = pd.concat([random_history(seed, n_leads=40, prefix=f"s{seed}_") for seed in range(15)],
                  ignore_index=True)
    cutoff = (h["entered_at"].max() - pd.Timedelta(days=back)).normalize()
    spec = crm_spec(stale_after=stale)
    want = normalise(pandas_transitions(h, spec, cutoff, by), by)
    got = normalise(warehouse_transitions(spark_table(spark, h), spec, cutoff=cutoff, by=by), by)
    assert len(want) > 50
    pd.testing.assert_frame_equal(got, want)
