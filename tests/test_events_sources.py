"""Every accepted kind of event source gives the same funnel, and results name their source."""
from __future__ import annotations

import pickle

import duckdb
import ibis
import pandas as pd
import pytest

from funnel_models.errors import FunnelDataError
from funnel_models.events import funnel

T0 = pd.Timestamp("2024-01-01")
EV = pd.DataFrame({"user_id": ["A", "A", "A", "B", "B", "C"],
                   "timestamp": [T0 + pd.Timedelta(seconds=s) for s in (0, 10, 20, 0, 5, 0)],
                   "event": ["a", "b", "c", "a", "b", "b"]})
STEPS = ["a", "b", "c"]


def test_ibis_table_url_and_connection_sources(tmp_path):
    db = tmp_path / "ev.duckdb"
    con = duckdb.connect(str(db))
    con.register("df", EV)
    con.execute("CREATE TABLE events AS SELECT * FROM df")
    con.close()
    want = [2, 2, 1]
    assert funnel(ibis.memtable(EV), STEPS).counts.tolist() == want
    url = funnel((f"duckdb:///{db}", "events"), STEPS)
    assert url.counts.tolist() == want
    back = pickle.loads(pickle.dumps(url))               # the URL travels with the result
    assert back.journey("A")["event"].tolist() == ["a", "b", "c"]
    ro = duckdb.connect(str(db), read_only=True)
    on_file = funnel((ro, "events"), STEPS)
    assert on_file.counts.tolist() == want
    assert funnel("events", STEPS, con=ro).counts.tolist() == want
    ro.close()                                           # the file travels, not the connection
    assert pickle.loads(pickle.dumps(on_file)).journey("C")["event"].tolist() == ["b"]


def test_path_with_a_capped_connection(tmp_path):
    path = tmp_path / "ev.parquet"
    EV.to_parquet(path)
    con = duckdb.connect(config={"memory_limit": "200MB", "threads": 1})
    assert funnel(str(path), STEPS, con=con).counts.tolist() == [2, 2, 1]


def test_live_in_memory_source_cannot_travel():
    con = duckdb.connect()
    con.register("events", EV)
    res = funnel((con, "events"), STEPS)
    assert res.journey("B")["event"].tolist() == ["a", "b"]
    back = pickle.loads(pickle.dumps(res))
    assert back.counts.tolist() == [2, 2, 1]
    with pytest.raises(FunnelDataError, match="recompute the funnel where the data is"):
        back.journey("B")


def test_bad_sources():
    with pytest.raises(FunnelDataError, match="pass a connection, SparkSession"):
        funnel(("only-one",), STEPS)
    with pytest.raises(FunnelDataError, match="must be a DuckDB connection"):
        funnel((42, "events"), STEPS)
    with pytest.raises(FunnelDataError, match="cannot read the events"):
        funnel((duckdb.connect(), "no_such_table"), STEPS)
    with pytest.raises(FunnelDataError, match="events must be a DataFrame"):
        funnel(3.5, STEPS)
