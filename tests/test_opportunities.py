"""One row per deal -> stage history: exact hand-made cases, a HubSpot-shaped export, Olist."""
from __future__ import annotations

import csv
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from funnel_models.data.readers import read_any, read_history, read_opportunities
from funnel_models.datasets.olist import (OLIST_DEALS_FILE, OLIST_LEADS_FILE, OLIST_OPPORTUNITY_SPEC, OLIST_SPEC,
                                          olist_dir, olist_opportunities, olist_stage_history)
from funnel_models.errors import FunnelDataError, FunnelWarning, SpecError
from funnel_models.data.spec import FunnelSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPEC = {
    "stages": [{"code": "NEW", "name": "New", "date_column": "created_at"},
               {"code": "ENG", "name": "Engaged", "date_column": "engaged_at"},
               {"code": "PROP", "name": "Proposal", "date_column": "proposal_at"}],
    "won": ["WON"], "lost": ["LOST", "DISQ"],
    "status": {"column": "status", "won": ["Won"], "lost": ["Lost"], "open": ["Open"]},
    "closed_at": "close_date",
    "columns": {"lead_id": "deal"}, "attributes": ["region"], "value": "amount",
}
HEADER = "deal,created_at,engaged_at,proposal_at,status,close_date,amount,region\n"
ROWS = ("d1,2024-01-03,2024-01-20,2024-02-11 10:00,Won,2024-03-05,1200,EU\n"
        "d2,2024-01-15,,,Lost,2024-01-30,,US\n"          # lost from NEW
        "d3,2024-02-01,2024-02-02,,Open,,800.5,EU\n"      # open at ENG
        "d4,2024-02-10,,2024-03-01,Open,2999-06-30,,US\n")  # skips ENG; close date of an open deal is ignored
HUBSPOT = {
    "stages": [{"code": "APPT", "name": "Appointment scheduled", "date_column": "Create Date"},
               {"code": "QUAL", "name": "Qualified to buy",
                "date_column": 'Date entered "Qualified To Buy (Sales Pipeline)"'},
               {"code": "PRES", "name": "Presentation scheduled",
                "date_column": 'Date entered "Presentation Scheduled (Sales Pipeline)"'},
               {"code": "CONTRACT", "name": "Contract sent",
                "date_column": 'Date entered "Contract Sent (Sales Pipeline)"'}],
    "won": ["WON"], "lost": ["LOST"],
    "status": {"column": "Deal Stage", "won": ["Closed Won"], "lost": ["Closed Lost"]},
    "closed_at": "Close Date", "columns": {"lead_id": "Record ID", "value": "Amount"}, "attributes": ["Deal owner"],
}


def test_each_row_becomes_the_deals_history(tmp_path: Path) -> None:
    f = tmp_path / "deals.csv"
    f.write_text(HEADER + ROWS)
    got = read_opportunities(f, SPEC)
    rows = [(r.lead_id, r.stage, r.entered_at.strftime("%Y-%m-%d %H:%M")) for r in got.itertuples()]
    assert rows == [("d1", "NEW", "2024-01-03 00:00"), ("d1", "ENG", "2024-01-20 00:00"),
                    ("d1", "PROP", "2024-02-11 10:00"), ("d1", "WON", "2024-03-05 00:00"),
                    ("d2", "NEW", "2024-01-15 00:00"), ("d2", "LOST", "2024-01-30 00:00"),
                    ("d3", "NEW", "2024-02-01 00:00"), ("d3", "ENG", "2024-02-02 00:00"),
                    ("d4", "NEW", "2024-02-10 00:00"), ("d4", "PROP", "2024-03-01 00:00")]
    assert got.columns.tolist() == ["lead_id", "stage", "entered_at", "region", "value"]
    assert got.groupby("lead_id")["value"].first().fillna(-1).to_dict() == {"d1": 1200.0, "d2": -1, "d3": 800.5, "d4": -1}
    assert set(got.loc[got.lead_id == "d2", "region"]) == {"US"}
    shape, same = read_any(f, SPEC)   # detected from the spec; stored as history
    assert shape == "history"
    pd.testing.assert_frame_equal(same, got)


def test_outcome_date_columns_instead_of_a_status(tmp_path: Path) -> None:
    spec = {"stages": [{"code": "NEW", "name": "New", "date_column": "created"}],
            "won": [{"code": "WON", "date_column": "won_on"}], "lost": [{"code": "LOST", "date_column": "lost_on"}]}
    f = tmp_path / "d.csv"
    f.write_text("lead_id,created,won_on,lost_on\na,2024-01-01,2024-02-01,\nb,2024-01-05,,2024-01-09\nc,2024-01-07,,\n")
    got = read_opportunities(f, spec)
    assert list(zip(got.lead_id, got.stage)) == [("a", "NEW"), ("a", "WON"), ("b", "NEW"), ("b", "LOST"), ("c", "NEW")]
    assert FunnelSpec.from_dict(spec).to_dict()["won"] == [{"code": "WON", "date_column": "won_on"}]


@pytest.mark.parametrize("rows,fragments", [
    ("d1,2024-01-03,,,Open,,,EU\nd1,2024-01-04,,,Open,,,EU\n", ["deal id appears more than once", "'d1' at rows [1, 2]",
                                                                "one row per deal"]),
    ("d1,2024-01-03,,,Won,,,EU\n", ["column 'close_date'", "won/lost deal has no close date", "row 1: 'Won'"]),
    ("d1,2024-01-03,,,Pending,,,EU\n", ["column 'status'", "not listed in the spec", "row 1: 'Pending'", "status.open"]),
    ("d1,,,,Open,,,EU\n", ["no date in any milestone column", "row 1"]),
    ("d1,2024-01-03,03/02/2024,,Open,,,EU\n", ["column 'engaged_at'", "not a date", "'03/02/2024'", "ISO 8601"]),
    ("d1,2024-01-03,,,,,,EU\n", ["column 'status'", "no status"]),
])
def test_bad_rows_are_named(tmp_path: Path, rows: str, fragments: list[str]) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + rows)
    with pytest.raises(FunnelDataError) as info:
        read_opportunities(f, SPEC)
    msg = str(info.value)
    assert msg.startswith(str(f)) and "Fix:" in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_two_outcome_dates_and_missing_layout_columns(tmp_path: Path) -> None:
    spec = {"stages": [{"code": "NEW", "name": "New", "date_column": "created"}],
            "won": [{"code": "WON", "date_column": "won_on"}], "lost": [{"code": "LOST", "date_column": "lost_on"}]}
    f = tmp_path / "d.csv"
    f.write_text("lead_id,created,won_on,lost_on\na,2024-01-01,2024-02-01,2024-02-01\n")
    with pytest.raises(FunnelDataError, match="more than one outcome date"):
        read_opportunities(f, spec)
    g = tmp_path / "e.csv"
    g.write_text("lead_id,created,won_date\na,2024-01-01,2024-02-01\n")
    with pytest.raises(FunnelDataError) as info:
        read_opportunities(g, spec)
    assert "'won_on' (date_column of WON) Did you mean 'won_date'?" in str(info.value)
    assert "'lost_on'" in str(info.value)


def test_open_values_are_named_when_not_listed(tmp_path: Path) -> None:
    spec = {**SPEC, "status": {"column": "status", "won": ["Won"], "lost": ["Lost"]}}
    f = tmp_path / "deals.csv"
    f.write_text(HEADER + ROWS.replace("Open", "In progress"))
    with pytest.warns(FunnelWarning, match=r"status values taken to mean 'open': \['In progress'\]"):
        assert len(read_opportunities(f, spec)) == 10


def test_spec_layout_is_validated() -> None:
    with pytest.raises(SpecError) as info:
        FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "status": {"column": "s", "won": ["Won"]}})
    msg = str(info.value)
    assert "status needs closed_at" in msg and "give the stages their date columns" in msg
    with pytest.raises(SpecError, match="quote the values"):
        FunnelSpec.from_dict({"stages": [{"code": "A", "name": "A", "date_column": "a"}], "won": ["W"],
                              "status": {"column": "s", "won": [True]}, "closed_at": "c"})


def _hubspot_truth() -> tuple[Counter, int]:
    """Independent counts from the raw file: filled milestone cells, and the rows."""
    with open(FIXTURES / "hubspot_deals.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    want: Counter = Counter()
    for st in HUBSPOT["stages"]:
        want[st["code"]] = sum(1 for r in rows if r[st["date_column"]])
    want["WON"] = sum(1 for r in rows if r["Deal Stage"] == "Closed Won")
    want["LOST"] = sum(1 for r in rows if r["Deal Stage"] == "Closed Lost")
    return want, len(rows)


def test_hubspot_shaped_export() -> None:
    want, n_rows = _hubspot_truth()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_opportunities(FIXTURES / "hubspot_deals.csv", HUBSPOT)
    assert any("taken to mean 'open'" in str(w.message) for w in caught)
    assert Counter(got["stage"]) == want and got["lead_id"].nunique() == n_rows
    assert got.columns.tolist() == ["lead_id", "stage", "entered_at", "Deal owner", "value"]
    # the same deals exported as stage changes (tests/fixtures/crm_stage_history.csv)
    hist = pd.read_csv(FIXTURES / "crm_stage_history.csv", dtype=str)
    codes = {"NEW": "APPT", "CONTACTED": "QUAL", "DEMO": "PRES", "PROPOSAL": "CONTRACT", "WON": "WON",
             "LOST": "LOST", "DISQUALIFIED": "LOST"}
    other = sorted(zip(hist["Deal ID"].str[1:], hist["Stage"].map(codes), pd.to_datetime(hist["Changed At"])))
    mine = sorted(zip(got["lead_id"], got["stage"], got["entered_at"]))
    assert mine == other


@pytest.mark.skipif(not (olist_dir() / OLIST_LEADS_FILE).is_file(), reason=f"Olist data not found at {olist_dir()}")
def test_olist_one_row_per_lead_matches_the_raw_files_and_the_history_route() -> None:
    with open(olist_dir() / OLIST_LEADS_FILE, newline="") as fh:
        leads = list(csv.DictReader(fh))
    with open(olist_dir() / OLIST_DEALS_FILE, newline="") as fh:
        deals = list(csv.DictReader(fh))
    known = {r["mql_id"] for r in leads}
    raw = olist_opportunities()
    assert len(raw) == 8000 and raw["mql_id"].is_unique
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        got = read_opportunities(raw, OLIST_OPPORTUNITY_SPEC)
        route = read_history(olist_stage_history(), OLIST_SPEC, mapping=OLIST_SPEC["columns"])
    month = got["entered_at"].dt.strftime("%Y-%m")
    assert Counter(month[got.stage == "MQL"]) == Counter(r["first_contact_date"][:7] for r in leads)
    assert Counter(month[got.stage == "WON"]) == Counter(r["won_date"][:7] for r in deals if r["mql_id"] in known)
    assert (got.stage == "WON").sum() == 842
    pd.testing.assert_frame_equal(got, route)
