"""The data behind the report's pictures, against counts done by hand on six leads.

Funnel A -> B -> won W / lost L, cut-off 2024-04-30. The stage history (day of entry):

=====  ==========================================  =====================================
lead   history                                     month-end statuses (Jan..Apr)
=====  ==========================================  =====================================
L1     A 01-05, B 02-10, W 03-15                   A, B, W
L2     A 01-20, L 01-25                            L (lost in its entry month)
L3     A 01-10                                     A, A, A, A (never moves)
L4     A 02-03, W 04-02 (skips B)                  -, A, A, W
L5     B 02-15 (enters at B), L 03-01              -, B, L
L6     A 03-05, B 03-20, W 03-28                   -, -, W (won in its entry month)
=====  ==========================================  =====================================

Every expected number below was counted from this table by hand, not by our code.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.charts.cohorts import cohort_grid, cohort_table
from funnel_models.charts.flows import flow_table, funnel_table
from funnel_models.charts.timing import stage_durations, time_to_convert_table
from funnel_models.data import derive
from funnel_models.data.spec import FunnelSpec
from funnel_models.errors import FunnelDataError

SPEC = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"], "attributes": ["channel"]})
CUT = "2024-04-30"
ROWS = [("L1", "A", "2024-01-05"), ("L1", "B", "2024-02-10"), ("L1", "W", "2024-03-15"),
        ("L2", "A", "2024-01-20"), ("L2", "L", "2024-01-25"),
        ("L3", "A", "2024-01-10"),
        ("L4", "A", "2024-02-03"), ("L4", "W", "2024-04-02"),
        ("L5", "B", "2024-02-15"), ("L5", "L", "2024-03-01"),
        ("L6", "A", "2024-03-05"), ("L6", "B", "2024-03-20"), ("L6", "W", "2024-03-28")]
CHANNEL = {"L1": "web", "L2": "web", "L3": "web", "L4": "partner", "L5": "partner", "L6": "partner"}


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    h = pd.DataFrame(ROWS, columns=["lead_id", "stage", "entered_at"])
    h["entered_at"] = pd.to_datetime(h["entered_at"])
    h["channel"] = h["lead_id"].map(CHANNEL)
    return h


@pytest.fixture(scope="module")
def snapshots(history) -> pd.DataFrame:
    return derive.snapshots_from_history(history, SPEC, cutoff=CUT)


def test_cohort_shares_by_hand(history):
    t = cohort_table(derive.cohorts(history, SPEC, cutoff=CUT), CUT, months=None)
    got = {(c.strftime("%Y-%m"), a): (n, w, o) for c, a, n, w, o in
           t[["cohort", "months_since_entry", "leads", "won", "open"]].itertuples(index=False)}
    # Jan: L1 L2 L3 -- L2 lost in Jan, L1 won in Mar, L3 open throughout
    # Feb: L4 L5 -- L5 lost in Mar, L4 won in Apr;  Mar: L6 won in Mar;  Apr: no lead
    assert got == {("2024-01", 0): (3, 0, 2), ("2024-01", 1): (3, 0, 2), ("2024-01", 2): (3, 1, 1),
                   ("2024-01", 3): (3, 1, 1),
                   ("2024-02", 0): (2, 0, 2), ("2024-02", 1): (2, 0, 1), ("2024-02", 2): (2, 1, 0),
                   ("2024-03", 0): (1, 1, 0), ("2024-03", 1): (1, 1, 0)}
    jan = t[t["cohort"] == pd.Timestamp("2024-01-01")]
    assert jan["won_share"].tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3])
    assert jan["open_share"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3, 1 / 3])
    grid = cohort_grid(t, "won_share")
    assert list(grid.index) == ["2024-01", "2024-02", "2024-03"]
    assert np.isnan(grid.loc["2024-03", 2]) and grid.loc["2024-02", 2] == 0.5   # after the cut-off: blank


def test_cohort_window_and_segment_by_hand(history):
    co = derive.cohorts(history, SPEC, cutoff=CUT)
    last2 = cohort_table(co, CUT, months=2)                    # Mar and Apr cohorts: only L6
    assert last2["cohort"].dt.strftime("%Y-%m").unique().tolist() == ["2024-03"]
    web = cohort_table(co, CUT, months=None, segment={"channel": "web"})   # L1 L2 L3 only
    assert web["leads"].unique().tolist() == [3] and web["won"].tolist() == [0, 0, 1, 1]
    with pytest.raises(FunnelDataError, match="region"):
        cohort_table(co, CUT, segment={"region": "x"})


def test_stage_durations_by_hand(snapshots):
    d = stage_durations(snapshots, SPEC, by=["channel"])
    got = {(r.lead_id, r.stage): (r.months, r.exit, r.months_to_win) for r in d.itertuples(index=False)}
    nan = float("nan")
    want = {("L1", "ENTRY"): (0, "moved on", 2), ("L1", "A"): (1, "moved on", 2), ("L1", "B"): (1, "won", 1),
            ("L2", "ENTRY"): (0, "lost", nan),
            ("L3", "ENTRY"): (0, "moved on", nan), ("L3", "A"): (nan, "open", nan),
            ("L4", "ENTRY"): (0, "moved on", 2), ("L4", "A"): (2, "won", 2),
            ("L5", "ENTRY"): (0, "moved on", nan), ("L5", "B"): (1, "lost", nan),
            ("L6", "ENTRY"): (0, "won", 0)}
    assert set(got) == set(want)
    for k, (months, exit_, to_win) in want.items():
        m, e, w = got[k]
        assert e == exit_, k
        assert (np.isnan(m) and np.isnan(months)) or m == months, k
        assert (np.isnan(w) and np.isnan(to_win)) or w == to_win, k
    assert d.loc[d["lead_id"] == "L4", "channel"].unique().tolist() == ["partner"]


def test_time_to_convert_table_by_hand(snapshots):
    t = time_to_convert_table(stage_durations(snapshots, SPEC), SPEC.codes, max_months=3).set_index(["stage", "months"])
    # left A: L1 after 1 month (moved on), L4 after 2 (won); left B: L1 after 1 (won), L5 after 1 (lost)
    assert t.loc[("A", 1), ["moved_on", "won", "lost"]].tolist() == [1, 0, 0]
    assert t.loc[("A", 2), ["moved_on", "won", "lost"]].tolist() == [0, 1, 0]
    assert t.loc[("B", 1), ["moved_on", "won", "lost"]].tolist() == [0, 1, 1]
    stages = t.drop(index="ENTRY", level="stage")
    assert stages[["moved_on", "won", "lost"]].to_numpy().sum() == 4          # L3 is still in A: not counted
    # the entry rows: where new leads were at their first month end (L2 lost, L6 won, 4 in an open stage)
    assert t.loc[("ENTRY", 0), ["moved_on", "won", "lost"]].tolist() == [4, 1, 1]
    # months to win: from entry L6 0, L1 2, L4 2; from entering A: L1 2, L4 2; from entering B: L1 1
    assert t.xs("ENTRY")["to_win"].tolist() == [1, 0, 2, 0]
    assert t.xs("A")["to_win"].tolist() == [0, 0, 2, 0]
    assert t.xs("B")["to_win"].tolist() == [0, 1, 0, 0]
    capped = time_to_convert_table(stage_durations(snapshots, SPEC), SPEC.codes, max_months=1).set_index(["stage", "months"])
    assert capped.loc[("ENTRY", 1), "to_win"] == 2                          # 2 months counted in the "1+" row


def test_flows_with_cold_leads_by_hand(snapshots):
    tr = derive.transitions(snapshots, SPEC)
    ft = flow_table(tr, SPEC.codes, cold_after=2)
    links = {(s, t): (n, k) for s, t, n, k in ft.links[["source", "target", "n", "kind"]].itertuples(index=False)}
    # L3 reaches A in Jan and never moves: Feb and Mar are its 2 whole months in A, so with cold_after=2 it
    # goes cold in Mar (a stay whose age at the start of Mar is 1); L4 (A in Feb, won in Apr) never goes cold.
    assert links == {("ENTRY", "A"): (3, "entry"), ("ENTRY", "B"): (1, "entry"), ("ENTRY", "WON"): (1, "skip"),
                     ("ENTRY", "LOST"): (1, "lost"), ("A", "B"): (1, "advance"), ("A", "WON"): (1, "skip"),
                     ("A", "COLD"): (1, "cold"), ("B", "WON"): (1, "advance"), ("B", "LOST"): (1, "lost")}
    cold_month = tr[(tr["from_stage"] == "A") & (tr["to_stage"] == "A") & (tr["age"] == 1)]["month"]
    assert cold_month.dt.strftime("%Y-%m").tolist() == ["2024-03"]
    assert funnel_table(ft)["leads"].tolist() == [6, 5, 4, 3]              # cold leads still count as open
    assert funnel_table(flow_table(tr, SPEC.codes))["leads"].tolist() == [6, 5, 4, 3]
    assert "COLD" not in set(flow_table(tr, SPEC.codes).links["target"])
    assert flow_table(tr, SPEC.codes, cold_after=2, since="2024-04-01").links["n"].sum() == 1   # only L4's win
