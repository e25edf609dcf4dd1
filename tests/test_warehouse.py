"""Transition counts in the warehouse (Ibis on DuckDB) equal the pandas derive path.

Differential tests on seeded random CRM histories (:mod:`crm_cases`): backward moves, skips,
same-day and same-timestamp moves, rows after closing, open leads, several won/lost codes,
segments with missing values, cut-offs inside the data, ``stale_after``. Plus exact
hand-computed cases and the errors a warehouse source gives.
"""
from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from crm_cases import crm_spec, normalise, pandas_transitions, random_history
from funnel_models.data.spec import FunnelSpec
from funnel_models.data.warehouse import canonical_history, check_history, warehouse_transitions
from funnel_models.errors import FunnelDataError


def duck(df: pd.DataFrame) -> ibis.Table:
    con = ibis.duckdb.connect()
    return con.create_table("history", df)


def on_duckdb(history: pd.DataFrame, spec: FunnelSpec, cutoff, by=()) -> pd.DataFrame:
    return warehouse_transitions(duck(history), spec, cutoff=cutoff, by=by)


@pytest.mark.parametrize("seed", range(12))
def test_random_histories_match_pandas(seed):
    h = random_history(seed)
    rng = np.random.default_rng(1000 + seed)
    last = h["entered_at"].max()
    cutoff = (last - pd.Timedelta(days=int(rng.integers(0, 120)))).normalize()
    by = [[], ["region"], ["region", "channel"]][seed % 3]
    spec = crm_spec(stale_after=[None, 2, 4][seed % 3 if seed % 2 else 0])
    want = normalise(pandas_transitions(h, spec, cutoff, by), by)
    got = normalise(on_duckdb(h, spec, cutoff, by), by)
    assert len(want) > 10
    pd.testing.assert_frame_equal(got, want)


def test_hand_computed_lead():
    """One lead: A (Jan 5), B (Mar 10), back to A (Mar 20), W (May 2); cut-off Jun 30.

    Month ends: Jan A, Feb A, Mar A (last row in March is the backward move to A: held at the
    furthest stage reached, which is still A at the end of March since B was left in March),
    Apr A, May W.
    """
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
    h = pd.DataFrame({"lead_id": ["x"] * 4, "stage": ["A", "B", "A", "W"],
                      "entered_at": pd.to_datetime(["2024-01-05", "2024-03-10", "2024-03-20", "2024-05-02"])})
    got = on_duckdb(h, spec, "2024-06-30")
    rows = list(zip(got["month"].dt.strftime("%Y-%m"), got["from_stage"], got["to_stage"], got["age"], got["n"]))
    assert rows == [("2024-01", "ENTRY", "A", 0, 1), ("2024-02", "A", "A", 0, 1), ("2024-03", "A", "A", 1, 1),
                    ("2024-04", "A", "A", 2, 1), ("2024-05", "A", "WON", 3, 1)]


def test_backward_move_held_at_furthest_stage():
    """B at the end of January, A at the end of February: February counts B -> B (age 0)."""
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
    h = pd.DataFrame({"lead_id": ["x", "x"], "stage": ["B", "A"],
                      "entered_at": pd.to_datetime(["2024-01-05", "2024-02-10"])})
    got = on_duckdb(h, spec, "2024-02-29")
    assert list(zip(got["from_stage"], got["to_stage"], got["age"])) == [("ENTRY", "B", 0), ("B", "B", 0)]


def test_cutoff_day_is_included():
    spec = FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "lost": ["L"]})
    h = pd.DataFrame({"lead_id": ["x", "x"], "stage": ["A", "W"],
                      "entered_at": pd.to_datetime(["2024-01-05 00:00:00", "2024-02-29 23:59:59"])})
    assert on_duckdb(h, spec, "2024-02-29")["to_stage"].tolist() == ["A", "WON"]
    assert on_duckdb(h, spec, "2024-02-28")["to_stage"].tolist() == ["A", "A"]


def test_missing_column_is_named():
    t = duck(pd.DataFrame({"lead": ["x"], "stage": ["A"], "entered_at": pd.to_datetime(["2024-01-05"])}))
    with pytest.raises(FunnelDataError, match=r"missing column\(s\) 'lead_id'.*columns: \{lead_id"):
        canonical_history(t, crm_spec(), label="file.duckdb::leads")


def test_unknown_code_and_empty_dates_are_refused():
    spec = crm_spec()
    bad = pd.DataFrame({"lead_id": ["x", "y"], "stage": ["NEW", "OOPS"],
                        "entered_at": pd.to_datetime(["2024-01-05", "2024-01-06"])})
    with pytest.raises(FunnelDataError, match=r"src: column 'stage' has unknown status code\(s\) \['OOPS'\]"):
        check_history(canonical_history(duck(bad), spec), spec, label="src")
    bad = pd.DataFrame({"lead_id": ["x", "y", "z"], "stage": ["NEW"] * 3, "entered_at": ["2024-01-05", None, "soon"]})
    with pytest.raises(FunnelDataError, match=r"column 'entered_at' is empty or not a date in 2 row"):
        check_history(canonical_history(duck(bad), spec), spec, label="src")
