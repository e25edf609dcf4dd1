"""Shared fixtures: one local Spark session for the whole test run (Spark starts slowly)."""
from __future__ import annotations

import shutil
import uuid

import pandas as pd
import pytest


def spark_available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


@pytest.fixture(scope="session")
def spark():
    """A ``local[2]`` SparkSession in UTC, with few shuffle partitions (small test data)."""
    if not spark_available():
        pytest.skip("pyspark or Java missing: pip install '.[spark]' and apt-get install "
                    "default-jre-headless")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("funnel_models-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_table(spark, df: pd.DataFrame):
    """``df`` as an Ibis table on Spark (object columns typed as strings)."""
    import ibis

    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("string")
    name = f"ev_{uuid.uuid4().hex[:8]}"
    spark.createDataFrame(df).createOrReplaceTempView(name)
    return ibis.pyspark.connect(spark).table(name)
