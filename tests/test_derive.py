"""L0: derived tables on a small hand-made funnel, with exact expected numbers.

Funnel A -> B -> C, won W, lost L. Four leads (cut-off 2024-04-30):

- x (North): A 01-05, B 02-10, W 02-20            -> won in February
- y (North): A 01-20, C 03-02                      -> skips B, open at the cut-off
- z (South): B 02-03, L 02-25                      -> enters at B (skips A), lost
- w (South): A 03-15, B 03-20, A 04-10             -> moves backwards in April
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.errors import FunnelDataError, FunnelWarning
from funnel_models.data.spec import FunnelSpec

SPEC = FunnelSpec.from_dict({"stages": ["A", "B", "C"], "won": ["W"], "lost": ["L"], "attributes": ["region"]})
CUT = "2024-04-30"


@pytest.fixture()
def history() -> pd.DataFrame:
    rows = [("x", "A", "2024-01-05", "North"), ("x", "B", "2024-02-10", "North"), ("x", "W", "2024-02-20", "North"),
            ("y", "A", "2024-01-20", "North"), ("y", "C", "2024-03-02", "North"),
            ("z", "B", "2024-02-03", "South"), ("z", "L", "2024-02-25", "South"),
            ("w", "A", "2024-03-15", "South"), ("w", "B", "2024-03-20", "South"), ("w", "A", "2024-04-10", "South")]
    df = pd.DataFrame(rows, columns=["lead_id", "stage", "entered_at", "region"])
    df["entered_at"] = pd.to_datetime(df["entered_at"])
    return df


def _m(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def test_snapshots_from_history(history):
    s = derive.snapshots_from_history(history, SPEC, cutoff=CUT)
    got = {(r.lead_id, r.month.strftime("%Y-%m")): r.stage for r in s.itertuples()}
    assert got == {("w", "2024-03"): "B", ("w", "2024-04"): "A",
                   ("x", "2024-01"): "A", ("x", "2024-02"): "W",
                   ("y", "2024-01"): "A", ("y", "2024-02"): "A", ("y", "2024-03"): "C", ("y", "2024-04"): "C",
                   ("z", "2024-02"): "L"}
    assert set(s.loc[s.lead_id == "z", "region"]) == {"South"}


def test_stale_leads_become_lost():
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"], "stale_after": 2})
    h = pd.DataFrame({"lead_id": ["v"], "stage": ["A"], "entered_at": pd.to_datetime(["2024-01-10"])})
    s = derive.snapshots_from_history(h, spec, cutoff="2024-05-31")
    assert s["stage"].tolist() == ["A", "A", "L"]
    assert s["month"].dt.month.tolist() == [1, 2, 3]


def test_transitions_exact(history):
    s = derive.snapshots_from_history(history, SPEC, cutoff=CUT)
    with pytest.warns(FunnelWarning, match="1 snapshot row"):
        t = derive.transitions(s, SPEC)
    got = {(r.month.strftime("%m"), r.from_stage, r.to_stage): r.n for r in t.itertuples()}
    assert got == {("01", "ENTRY", "A"): 2,
                   ("02", "A", "WON"): 1, ("02", "A", "A"): 1, ("02", "ENTRY", "LOST"): 1,
                   ("03", "A", "C"): 1, ("03", "ENTRY", "B"): 1,
                   ("04", "C", "C"): 1, ("04", "B", "B"): 1}
    by = derive.transitions(s[s.lead_id != "w"], SPEC, by=["region"])
    assert by.loc[by.region == "South", "n"].sum() == 1


def test_transitions_unknown_code_lists_values(history):
    s = derive.snapshots_from_history(history, SPEC, cutoff=CUT)
    s.loc[0, "stage"] = "ZZ"
    with pytest.raises(FunnelDataError, match=r"unknown status code\(s\) \['ZZ'\]"):
        derive.transitions(s, SPEC)


def test_stage_counts_and_change(history):
    s = derive.snapshots_from_history(history, SPEC, cutoff=CUT)
    c = derive.stage_counts(s, SPEC).set_index(["month", "stage"])
    assert c.loc[(_m("2024-01-01"), "A"), "count"] == 2
    feb_a = c.loc[(_m("2024-02-01"), "A")]
    assert (feb_a["count"], feb_a["change"], feb_a["pct_change"]) == (1, -1, -50.0)
    assert c.loc[(_m("2024-02-01"), "WON"), "count"] == 1 and c.loc[(_m("2024-02-01"), "LOST"), "count"] == 1
    assert np.isnan(c.loc[(_m("2024-02-01"), "WON"), "pct_change"])  # from 0 last month


def test_stage_entries(history):
    s = derive.snapshots_from_history(history, SPEC, cutoff=CUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        e = derive.stage_entries(derive.transitions(s, SPEC))
    got = {(r.month.strftime("%m"), r.stage): r.count for r in e.itertuples()}
    assert got == {("01", "A"): 2, ("02", "LOST"): 1, ("02", "WON"): 1, ("03", "B"): 1, ("03", "C"): 1}


def test_time_in_stage(history):
    t = derive.time_in_stage(history, SPEC, cutoff=CUT).set_index(["lead_id", "stage", "entered_at"])
    xa = t.loc[("x", "A", _m("2024-01-05"))]
    assert (xa["days"], xa["months"], xa["censored"]) == (36.0, 1, False)
    ya = t.loc[("y", "A", _m("2024-01-20"))]
    assert (ya["days"], ya["months"]) == (42.0, 2)
    yc = t.loc[("y", "C", _m("2024-03-02"))]
    assert bool(yc["censored"]) and yc["left_at"] == _m(CUT)
    assert len(t) == 8  # every open-stage row, closing rows excluded


def test_open_pipeline(history):
    p = derive.open_pipeline(history, SPEC, cutoff=CUT).set_index("lead_id")
    assert sorted(p.index) == ["w", "y"]
    assert (p.loc["y", "stage"], p.loc["y", "age_days"], p.loc["y", "age_months"]) == ("C", 59.0, 1)
    assert (p.loc["w", "stage"], p.loc["w", "age_months"], p.loc["w", "region"]) == ("A", 0, "South")
    early = derive.open_pipeline(history, SPEC, cutoff="2024-02-15")
    assert sorted(early["lead_id"]) == ["x", "y", "z"]


def test_skipped_stages(history):
    per_lead, per_stage = derive.skipped_stages(history, SPEC)
    got = {(r.lead_id, r.from_stage, r.to_stage): r.skipped for r in per_lead.itertuples()}
    assert got == {("x", "B", "WON"): ["C"], ("y", "A", "C"): ["B"], ("z", "ENTRY", "B"): ["A"]}
    ps = per_stage.set_index("stage")
    assert ps["skipped_by"].tolist() == [1, 1, 1]
    assert ps["reached_by"].tolist() == [3, 3, 1]
    assert ps.loc["A", "skip_share"] == pytest.approx(0.25)


def test_cohorts_with_censoring(history):
    c = derive.cohorts(history, SPEC, cutoff=CUT).set_index("lead_id")
    assert c.loc["x", "outcome"] == "WON" and c.loc["x", "months_to_close"] == 1
    assert c.loc["z", "outcome"] == "LOST" and c.loc["z", "months_to_close"] == 0
    assert c.loc["y", "outcome"] == "OPEN" and bool(c.loc["y", "censored"]) and np.isnan(c.loc["y", "months_to_close"])
    assert c.loc["w", "cohort"] == _m("2024-03-01")


def test_filters_before_derivation(history):
    north = derive.filter_frame(history, {"region": "North"})
    assert set(north.lead_id) == {"x", "y"}
    late = derive.filter_frame(history, start="2024-02-01")
    assert set(late.lead_id) == {"z", "w"}  # whole leads, by their first entry
    both = derive.filter_frame(history, {"region": ["South"]}, end="2024-02-28")
    assert set(both.lead_id) == {"z"}
    with pytest.raises(FunnelDataError, match="not in the data"):
        derive.filter_frame(history, {"campaign": "x"})


def test_transitions_record_the_months_already_spent_in_the_source_stage():
    """x: A in Jan and Feb, B in Mar and Apr, won in May; y: A in Jan, lost in Feb."""
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
    h = pd.DataFrame({"lead_id": ["x"] * 3 + ["y"] * 2, "stage": ["A", "B", "W", "A", "L"],
                      "entered_at": pd.to_datetime(["2024-01-05", "2024-03-10", "2024-05-20",
                                                    "2024-01-03", "2024-02-01"])})
    tr = derive.transitions(derive.snapshots_from_history(h, spec, cutoff="2024-06-30"), spec)
    got = sorted(zip(tr["month"].dt.strftime("%Y-%m"), tr["from_stage"], tr["to_stage"], tr["age"], tr["n"]))
    assert got == [("2024-01", "ENTRY", "A", 0, 2), ("2024-02", "A", "A", 0, 1), ("2024-02", "A", "LOST", 0, 1),
                   ("2024-03", "A", "B", 1, 1), ("2024-04", "B", "B", 0, 1), ("2024-05", "B", "WON", 1, 1)]


def test_cohorts_from_snapshots_match_cohorts_from_history(history):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        from_h = derive.cohorts(history, SPEC, cutoff=CUT)
        from_s = derive.cohorts(derive.snapshots_from_history(history, SPEC, cutoff=CUT), SPEC, cutoff=CUT)
    pd.testing.assert_frame_equal(from_h, from_s)
    # an export that keeps listing a closed lead: closed at its first closing month
    s = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "lead_id": ["v"] * 3,
                      "stage": ["A", "W", "W"]})
    c = derive.cohorts(s, SPEC).set_index("lead_id")
    assert (c.loc["v", "outcome"], c.loc["v", "closed_at"], c.loc["v", "months_to_close"]) == \
        ("WON", pd.Timestamp("2024-02-01"), 1)


def test_a_close_is_final_even_when_an_open_stage_follows_it():
    """A CRM that logs 'won' and then (a clerk's edit) the first stage again: the lead is won
    from its first close on; nothing after the close reopens it (the Olist export has one)."""
    h = pd.DataFrame({"lead_id": ["p", "p", "q", "q", "q"],
                      "stage": ["W", "A", "A", "W", "B"],
                      "entered_at": pd.to_datetime(["2024-01-04", "2024-01-20",
                                                    "2024-01-02", "2024-02-10", "2024-03-05"]),
                      "region": ["EU"] * 5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        s = derive.snapshots_from_history(h, SPEC, cutoff="2024-04-30")
    got = {(r.lead_id, r.month.strftime("%Y-%m")): r.stage for r in s.itertuples()}
    assert got == {("p", "2024-01"): "W", ("q", "2024-01"): "A", ("q", "2024-02"): "W"}
