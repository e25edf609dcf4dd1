"""Readers: CSV / Parquet / DuckDB / DataFrame sources, mapping, shapes, dtypes, warnings, Olist."""
from __future__ import annotations

import csv
import datetime as dt
import warnings
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnel_models.datasets import OLIST_SPEC, olist_dir, olist_stage_history
from funnel_models.errors import FunnelDataError, FunnelWarning
from funnel_models.data.columns import detect_shape
from funnel_models.data.dates import parse_month
from funnel_models.data.readers import (read_any, read_counts,
                                   read_history, read_snapshots)
from funnel_models.data.spec import FunnelSpec

SPEC = FunnelSpec.from_dict({
    "stages": [{"code": "NEW", "name": "New"}, {"code": "QUAL", "name": "Qualified"},
               {"code": "PROP", "name": "Proposal"}],
    "won": ["WON"], "lost": ["LOST", "DISQ"],
    "columns": {"lead_id": "opportunity", "stage": "deal_stage", "entered_at": "changed_on"},
    "attributes": ["region"],
})
HISTORY_CSV = (
    "opportunity,deal_stage,changed_on,region,value,ignored\n"
    "o2,NEW,2024-01-05,US,,x\n"
    "o1,QUAL,2024-02-01 09:30:00,EU,1500.5,x\n"
    "o1,NEW,2024-01-03,EU,1500.5,x\n"
    " o3 , DISQ ,2024-03-02T08:00:00,,,x\n"
    "o3,NEW,2024-02-28,APAC,,x\n"
)
OLIST_DIR = olist_dir()


def expected_history() -> pd.DataFrame:
    df = pd.DataFrame({
        "lead_id": ["o1", "o1", "o2", "o3", "o3"],
        "stage": ["NEW", "QUAL", "NEW", "NEW", "DISQ"],
        "entered_at": pd.to_datetime(["2024-01-03", "2024-02-01 09:30", "2024-01-05",
                                      "2024-02-28", "2024-03-02 08:00"], format="ISO8601").astype("datetime64[ns]"),
        "region": pd.array(["EU", "EU", "US", "APAC", None], dtype="str"),
        "value": [1500.5, 1500.5, float("nan"), float("nan"), float("nan")],
    })
    df["lead_id"] = df["lead_id"].astype("str")
    df["stage"] = df["stage"].astype("str")
    return df


def test_read_history_csv(tmp_path: Path) -> None:
    f = tmp_path / "h.csv"
    f.write_text(HISTORY_CSV)
    got = read_history(f, SPEC)
    pd.testing.assert_frame_equal(got, expected_history())
    assert str(got["entered_at"].dtype) == "datetime64[ns]"
    assert got["lead_id"].dtype == "str"


def test_parquet_duckdb_and_dataframe_sources_agree(tmp_path: Path) -> None:
    f = tmp_path / "h.csv"
    f.write_text(HISTORY_CSV)
    raw = pd.read_csv(f, dtype=str, keep_default_na=False)
    raw["changed_on"] = pd.to_datetime(raw["changed_on"].str.strip(), format="ISO8601")
    raw.to_parquet(tmp_path / "h.parquet")
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE raw_history AS SELECT * FROM read_parquet(?)", [str(tmp_path / "h.parquet")])
    for source in (tmp_path / "h.parquet", f"{db}::raw_history", raw):
        pd.testing.assert_frame_equal(read_history(source, SPEC), expected_history(), obj=str(type(source)))


def test_mapping_argument_overrides_spec_and_case_insensitive_match(tmp_path: Path) -> None:
    f = tmp_path / "h.csv"
    f.write_text("Deal,Status,Changed_On,REGION\nd1,NEW,2024-01-01,EU\n")
    got = read_history(f, SPEC, mapping={"lead_id": "Deal", "stage": "Status"})
    assert got.columns.tolist() == ["lead_id", "stage", "entered_at", "region"]
    assert got.iloc[0].tolist() == ["d1", "NEW", pd.Timestamp("2024-01-01"), "EU"]


def test_delimiter_and_encoding_options(tmp_path: Path) -> None:
    body = "opportunity;deal_stage;changed_on;region\no1;NEW;2024-01-01;Zürich\no1;WON;2024-02-01;Zürich €\n"
    (tmp_path / "cp.csv").write_bytes(body.encode("cp1252"))
    got = read_history(tmp_path / "cp.csv", SPEC, delimiter=";", encoding="cp1252")  # transcoded path
    assert got["region"].tolist() == ["Zürich", "Zürich €"]
    (tmp_path / "l1.csv").write_bytes(body.replace(" €", "").encode("latin-1"))
    got = read_history(tmp_path / "l1.csv", SPEC, delimiter=";", encoding="latin-1")  # DuckDB native
    assert got["region"].tolist() == ["Zürich", "Zürich"]
    (tmp_path / "t.tsv").write_text(body.replace(";", "\t"))
    assert len(read_history(tmp_path / "t.tsv", SPEC)) == 2  # .tsv defaults to tab


def test_read_snapshots(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("month,opportunity,deal_stage,region\n2024-02,o1,QUAL,EU\n2024-01-31,o1,NEW,EU\n"
                 "2024-01,o2,NEW,US\n2024-01,o2,NEW,US\n")
    with pytest.warns(FunnelWarning, match="1 duplicate"):
        got = read_snapshots(f, SPEC)
    assert got.columns.tolist() == ["month", "lead_id", "stage", "region"]
    assert got["month"].tolist() == pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-01"]).tolist()
    assert got["stage"].tolist() == ["NEW", "QUAL", "NEW"]
    assert str(got["month"].dtype) == "datetime64[ns]"
    # a monthly export without a month column gets month= ...
    g = tmp_path / "march.csv"
    g.write_text("opportunity,deal_stage,region\no1,PROP,EU\n")
    shape, df = read_any(g, SPEC, month="2024-03")
    assert shape == "snapshots" and df["month"].tolist() == [pd.Timestamp("2024-03-01")]
    with pytest.raises(FunnelDataError, match="no month column"):
        read_snapshots(g, SPEC)


def test_read_counts_sums_repeated_keys(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("month,deal_stage,count,region\n2024-01,NEW,10,EU\n2024-01,NEW,5,EU\n"
                 "2024-01,WON,2.0,EU\n2024-02,QUAL,0,US\n")
    with pytest.warns(FunnelWarning, match="summed"):
        got = read_counts(f, SPEC, mapping={"stage": "deal_stage"})
    assert got.to_dict("list") == {
        "month": [pd.Timestamp("2024-01-01")] * 2 + [pd.Timestamp("2024-02-01")],
        "stage": ["NEW", "WON", "QUAL"], "count": [15, 2, 0], "region": ["EU", "EU", "US"]}
    assert got["count"].dtype == "int64"


def test_detect_shape() -> None:
    assert detect_shape(["opportunity", "deal_stage", "changed_on"], SPEC) == "history"
    assert detect_shape(["month", "opportunity", "deal_stage"], SPEC) == "snapshots"
    assert detect_shape(["opportunity", "deal_stage"], SPEC, month_given=True) == "snapshots"
    assert detect_shape(["month", "deal_stage", "n"], SPEC, {"count": "n"}) == "counts"
    with pytest.raises(FunnelDataError, match="cannot tell the input shape"):
        detect_shape(["a", "b"], SPEC, source="x.csv")


def test_backwards_moves_warn_and_do_not_fail(tmp_path: Path) -> None:
    f = tmp_path / "back.csv"
    f.write_text("opportunity,deal_stage,changed_on,region\n"
                 "a,NEW,2024-01-01,EU\na,PROP,2024-02-01,EU\na,QUAL,2024-03-01,EU\n"   # backwards
                 "b,WON,2024-01-01,EU\nb,NEW,2024-02-01,EU\n"                          # won before first stage
                 "c,NEW,2024-01-01,EU\nc,QUAL,2024-02-01,EU\nc,WON,2024-03-01,EU\n")   # fine
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_history(f, SPEC)
    msgs = [str(w.message) for w in caught if issubclass(w.category, FunnelWarning)]
    assert len(msgs) == 1
    assert "2 lead(s) move backwards in the funnel (2 row(s))" in msgs[0]
    assert "1 of these leads entered a later stage before their earliest-in-funnel stage" in msgs[0]
    assert len(got) == 8


def test_row_numbers_in_a_large_file(tmp_path: Path) -> None:
    """Offending rows are numbered as in the file, even when DuckDB reads in parallel."""
    n = 60_000
    bad = {12_345, 41_000, 59_999}
    lines = ["opportunity,deal_stage,changed_on,region"]
    lines += [f"L{i},NEW,{'2024-99-01' if i in bad else '2024-01-01'},EU" for i in range(1, n + 1)]
    f = tmp_path / "big.csv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(FunnelDataError) as info:
        read_history(f, SPEC)
    assert "3 values are not dates -- row 12345: '2024-99-01', row 41000: '2024-99-01', row 59999" in str(info.value)


def test_parse_month() -> None:
    assert parse_month("2024-03") == pd.Timestamp("2024-03-01")
    assert parse_month(dt.date(2024, 3, 9)) == pd.Timestamp("2024-03-01")
    for bad in ("2024/03", "2024-3", "March", "2024-13"):
        with pytest.raises(FunnelDataError, match="YYYY-MM"):
            parse_month(bad)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]),
                          st.sampled_from(["NEW", "QUAL", "PROP", "WON", "DISQ"]),
                          st.dates(dt.date(2015, 1, 1), dt.date(2024, 12, 31))),
                min_size=1, max_size=30, unique=True))
def test_history_keeps_every_distinct_row_sorted(rows: list[tuple[str, str, dt.date]]) -> None:
    raw = pd.DataFrame(rows, columns=["opportunity", "deal_stage", "changed_on"])
    raw["region"] = "EU"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        got = read_history(raw, SPEC)
    assert len(got) == len(raw)
    assert Counter(zip(got["lead_id"], got["stage"], got["entered_at"].dt.date)) == Counter(rows)
    keys = list(zip(got["lead_id"], got["entered_at"]))
    assert keys == sorted(keys)


@pytest.mark.skipif(not OLIST_DIR.is_dir(), reason=f"Olist data not found at {OLIST_DIR} "
                    "(set FUNNEL_OLIST_DIR, or put shared/datasets/olist-marketing-funnel in a parent folder)")
def test_olist_monthly_counts_match_the_raw_files(tmp_path: Path) -> None:
    # independent counts, with csv + collections only, from the original two files
    with open(OLIST_DIR / "olist_marketing_qualified_leads_dataset.csv", newline="") as fh:
        leads = list(csv.DictReader(fh))
    with open(OLIST_DIR / "olist_closed_deals_dataset.csv", newline="") as fh:
        deals = list(csv.DictReader(fh))
    known = {r["mql_id"] for r in leads}
    want_mql = Counter(r["first_contact_date"][:7] for r in leads)
    want_won = Counter(r["won_date"][:7] for r in deals if r["mql_id"] in known)
    want_origin = Counter((r["origin"] or "unknown") for r in leads)

    raw = olist_stage_history(OLIST_DIR)
    assert raw.columns.tolist() == ["mql_id", "status", "changed_on", "origin", "landing_page_id"]
    f = tmp_path / "olist_history.csv"
    raw.to_csv(f, index=False)
    spec = FunnelSpec.from_dict(OLIST_SPEC)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = read_history(f, spec, mapping=OLIST_SPEC["columns"])
    # one deal in the data is won before its first contact: a warning, not an error
    assert any("before their earliest-in-funnel stage" in str(w.message) for w in caught)
    month = hist["entered_at"].dt.strftime("%Y-%m")
    got_mql = Counter(month[hist["stage"] == "MQL"])
    got_won = Counter(month[hist["stage"] == "WON"])
    assert got_mql == want_mql and sum(got_mql.values()) == 8000
    assert got_won == want_won and sum(got_won.values()) == 842
    assert Counter(hist.loc[hist["stage"] == "MQL", "origin"]) == want_origin
    assert hist.columns.tolist() == ["lead_id", "stage", "entered_at", "origin"]


# ---------------------------------------------------------------- no silent wrong answers
TZ_SPEC = {"stages": ["NEW", "QUAL", "PROP"], "won": ["WON"], "lost": ["LOST"]}


def test_offsets_are_converted_to_the_spec_timezone_with_a_note(tmp_path: Path) -> None:
    """Read as written, a's QUAL (10:00+02:00 = 08:00 UTC) would come after its PROP
    (09:00 UTC); converted, the order is right."""
    f = tmp_path / "tz.csv"
    f.write_text("lead_id,stage,entered_at\na,NEW,2024-03-01T07:00:00Z\na,QUAL,2024-03-01T10:00:00+02:00\n"
                 "a,PROP,2024-03-01 09:00:00\nb,NEW,2024-03-01 23:30:00-05:00\n")
    with pytest.warns(FunnelWarning) as rec:
        got = read_history(f, TZ_SPEC)
    note = " ".join(str(w.message) for w in rec)
    assert "3 time stamp(s) carry a UTC offset (+02:00, -05:00, Z); converted to UTC" in note
    assert "the other 1 have no offset" in note and "Fix: set timezone:" in note
    assert got[["lead_id", "stage", "entered_at"]].values.tolist() == [
        ["a", "NEW", pd.Timestamp("2024-03-01 07:00")], ["a", "QUAL", pd.Timestamp("2024-03-01 08:00")],
        ["a", "PROP", pd.Timestamp("2024-03-01 09:00")], ["b", "NEW", pd.Timestamp("2024-03-02 04:30")]]
    with pytest.warns(FunnelWarning, match="converted to Europe/Berlin"):
        berlin = read_history(f, {**TZ_SPEC, "timezone": "Europe/Berlin"})   # winter: UTC+1
    assert berlin["entered_at"].iloc[1] == pd.Timestamp("2024-03-01 09:00")
    assert berlin["entered_at"].iloc[2] == pd.Timestamp("2024-03-01 09:00")  # naive: taken as Berlin time


def test_timezone_aware_dataframe_columns_are_converted() -> None:
    raw = pd.DataFrame({"lead_id": ["a", "a"], "stage": ["NEW", "WON"],
                        "entered_at": pd.to_datetime(["2024-03-01 10:00", "2024-03-02 10:00"]).tz_localize("Europe/Paris")})
    with pytest.warns(FunnelWarning, match="converted to UTC"):
        got = read_history(raw, TZ_SPEC)
    assert got["entered_at"].tolist() == [pd.Timestamp("2024-03-01 09:00"), pd.Timestamp("2024-03-02 09:00")]


def test_placeholder_dates_warn(tmp_path: Path) -> None:
    f = tmp_path / "ph.csv"
    f.write_text("lead_id,stage,entered_at\na,NEW,1970-01-01\na,QUAL,2024-01-05\nb,NEW,1900-01-01 00:00:00\n")
    with pytest.warns(FunnelWarning, match=r"2 dates are 1900-01-01 or 1970-01-01.*rows \[1, 3\].*blank or correct"):
        assert len(read_history(f, TZ_SPEC)) == 3


def test_won_and_lost_at_the_same_time_is_an_error_naming_the_lead(tmp_path: Path) -> None:
    f = tmp_path / "both.csv"
    f.write_text("lead_id,stage,entered_at\na,NEW,2024-01-01\na,WON,2024-02-01 10:00\na,LOST,2024-02-01 10:00\n"
                 "b,NEW,2024-01-01\nb,WON,2024-02-01\nb,LOST,2024-02-02\n")
    with pytest.raises(FunnelDataError) as info:
        read_history(f, TZ_SPEC)
    msg = str(info.value)
    assert "1 lead is both won and lost at the same time" in msg
    assert "lead 'a' at 2024-02-01 10:00:00: ['LOST', 'WON'] (rows [2, 3])" in msg
    assert "'b'" not in msg and "Fix: remove the wrong row" in msg


def test_spec_yaml_is_read_safely(tmp_path: Path) -> None:
    from funnel_models.errors import SpecError
    dup = tmp_path / "dup.yaml"
    dup.write_text("stages: [NEW]\nwon: [WON]\nwon: [CLOSED]\n")
    with pytest.raises(SpecError, match=r"duplicate key 'won' at line 3 \(first at line 2\)"):
        FunnelSpec.from_yaml(dup)
    with pytest.raises(SpecError, match="is a folder, not a funnel spec"):
        FunnelSpec.from_yaml(tmp_path)
    with pytest.raises(SpecError, match="unknown zone 'Mars/Olympus'"):
        FunnelSpec.from_dict({**TZ_SPEC, "timezone": "Mars/Olympus"})


def test_identifiers_and_paths_are_quoted(tmp_path: Path) -> None:
    """Column names and file names holding quotes reach DuckDB intact."""
    d = tmp_path / "it's here"
    d.mkdir()
    f = d / 'o"dd.csv'
    f.write_text('lead "id",stage,entered_at,"re\'gion"\na,NEW,2024-01-01,EU\n')
    spec = {**TZ_SPEC, "columns": {"lead_id": 'lead "id"'}, "attributes": ["re'gion"]}
    got = read_history(f, spec)
    assert got.columns.tolist() == ["lead_id", "stage", "entered_at", "re'gion"] and got["re'gion"].tolist() == ["EU"]
