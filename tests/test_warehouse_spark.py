"""Transition counts on Spark ``local[2]`` (Ibis' PySpark backend) equal the pandas derive path.

Many random histories with disjoint lead ids are stacked into one table per case, so each case
is one Spark query (transition counts add up over leads). Marked ``spark``; the Markov fit on
a Spark-resident Olist copy is also ``slow``.
"""
from __future__ import annotations

import uuid
import warnings

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_cases import crm_spec, normalise, pandas_transitions, random_history
from funnel_models.data.warehouse import warehouse_transitions
from funnel_models.datasets.olist import OLIST_SPEC, olist_dir, olist_stage_history
from funnel_models.workflow import fit_model, load_data

pytestmark = pytest.mark.spark

CASES = [  # (stale_after, by, cut-off days before the last row)
    (None, [], 0),
    (None, ["region", "channel"], 40),
    (3, ["region"], 75),
]


def spark_history(spark, df: pd.DataFrame) -> ibis.Table:
    """``df`` as a Spark table with real NULLs for missing values (pandas' string dtype would
    reach Spark as the text 'NaN', float NaN as a NaN double)."""
    df = df.astype({c: object for c in df.columns if c != "entered_at"})
    for c in df.columns:
        if c != "entered_at":
            df[c] = [None if pd.isna(v) else v for v in df[c]]
    name = f"crm_{uuid.uuid4().hex[:8]}"
    spark.createDataFrame(df).createOrReplaceTempView(name)
    return ibis.pyspark.connect(spark).table(name)


@pytest.mark.parametrize("stale,by,back", CASES)
def test_spark_matches_pandas(spark, stale, by, back):
    h = pd.concat([random_history(seed, n_leads=40, prefix=f"s{seed}_") for seed in range(15)],
                  ignore_index=True)
    cutoff = (h["entered_at"].max() - pd.Timedelta(days=back)).normalize()
    spec = crm_spec(stale_after=stale)
    want = normalise(pandas_transitions(h, spec, cutoff, by), by)
    got = normalise(warehouse_transitions(spark_history(spark, h), spec, cutoff=cutoff, by=by), by)
    assert len(want) > 50
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
@pytest.mark.skipif(not olist_dir().exists(), reason=f"Olist data not found at {olist_dir()}")
def test_markov_fit_on_spark_olist_agrees_with_csv(spark, tmp_path):
    """The Markov model fitted on a Spark-resident Olist copy (only counts leave Spark) agrees
    with the CSV fit within Monte Carlo error: different sampler seeds, same data."""
    csv = load_data("olist")
    wh = load_data(spark_history(spark, olist_stage_history(olist_dir())), spec=OLIST_SPEC)
    assert wh.kind == "warehouse" and wh.cutoff == csv.cutoff
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fit_model(csv, model="markov", cache_dir=tmp_path / "a", sampler_config={"seed": 1})
        b = fit_model(wh, model="markov", cache_dir=tmp_path / "b", sampler_config={"seed": 2})
    assert a.data.fingerprint() == b.data.fingerprint()
    wa, wb = a.posterior_funnel().lead_win_rate(), b.posterior_funnel().lead_win_rate()
    ess = min(a.diagnostics(warn=False).ess_bulk_min, b.diagnostics(warn=False).ess_bulk_min)
    mcse = np.hypot(wa.std(), wb.std()) / np.sqrt(ess)
    assert abs(wa.mean() - wb.mean()) < 4 * mcse
