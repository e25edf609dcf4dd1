"""Malformed inputs: one clear error naming file, column, rows and fix; CLI exit 2; store untouched."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pytest
import yaml

from funnel_models.cli import main
from funnel_models.commands.ingest import parse_map
from funnel_models.errors import FunnelDataError, FunnelError, SpecError
from funnel_models.data.readers import read_any
from funnel_models.data.spec import FunnelSpec

SPEC = {
    "stages": [{"code": "NEW", "name": "New"}, {"code": "QUAL", "name": "Qualified"}],
    "won": ["WON"],
    "lost": ["LOST"],
    "attributes": ["region"],
}
GOOD = "lead_id,stage,entered_at,region\nA,NEW,2024-01-02,EU\nA,QUAL,2024-02-03,EU\nB,NEW,2024-01-09,US\n"


@dataclass
class Case:
    """A malformed input: how to write it, the CLI arguments, what the message must say."""

    make: Callable[[Path], str]          # writes the input under a dir, returns FILE argument
    expect: list[str]                    # fragments the message must contain
    args: list[str] = field(default_factory=list)
    spec: dict | None = None
    error: type[FunnelError] = FunnelDataError
    names_file: bool = True


def text(name: str, content: str | bytes) -> Callable[[Path], str]:
    def make(d: Path) -> str:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(p)
    return make


def duckdb_table(d: Path) -> str:
    p = d / "warehouse.duckdb"
    with duckdb.connect(str(p)) as con:
        con.execute("CREATE TABLE history_raw AS SELECT 'A' AS lead_id, 'NEW' AS stage, "
                    "TIMESTAMP '2024-01-01' AS entered_at, 'EU' AS region")
    return f"{p}::histroy_raw"


def directory(d: Path) -> str:
    p = d / "exports"
    p.mkdir()
    (p / "leads.csv").write_text(GOOD)
    return str(p)


H = "lead_id,stage,entered_at,region\n"
SN = "month,lead_id,stage,region\n"
CN = "month,stage,count,region\n"
CASES: dict[str, Case] = {
    "empty_file": Case(text("empty.csv", b""), ["empty"]),
    "header_only": Case(text("header.csv", H), ["header but no data rows"]),
    "blank_lines_only": Case(text("blank.csv", "\n\n  \n"), ["empty"]),
    "missing_column": Case(text("nodate.csv", "lead_id,stage,region\nA,NEW,EU\n"),
                           ["missing column", "'entered_at'", "Available columns"], ["--shape", "history"]),
    "missing_attribute": Case(text("noregion.csv", "lead_id,stage,entered_at,Regio\nA,NEW,2024-01-01,EU\n"),
                              ["missing column", "'region'", "'Regio'"]),
    "map_to_missing_column": Case(text("opp.csv", "opportunity,stage,entered_at,region\nA,NEW,2024-01-01,EU\n"),
                                  ["'opportunty'", "does not exist", "Did you mean 'opportunity'",
                                   "Available columns"], ["--map", "lead_id=opportunty"]),
    "spec_maps_missing_column": Case(text("opp2.csv", "opportunity,stage,entered_at,region\nA,NEW,2024-01-01,EU\n"),
                                     ["'opp_id'", "does not exist", "Available columns"],
                                     spec={**SPEC, "columns": {"lead_id": "opp_id"}}),
    "unparseable_dates": Case(text("dates.csv", H + "A,NEW,2024-01-01,EU\nA,QUAL,2024-13-01,EU\n"
                                   "B,NEW,2024-01-03,EU\nB,QUAL,yesterday,EU\n"),
                              ["column 'entered_at'", "not dates", "row 2: '2024-13-01'",
                               "row 4: 'yesterday'", "ISO 8601"]),
    "future_dates": Case(text("future.csv", H + "A,NEW,2024-01-01,EU\nA,QUAL,2999-01-01,EU\n"),
                         ["future", "row 2: '2999-01-01'"]),
    "dates_before_1900": Case(text("old.csv", H + "A,NEW,0202-01-01,EU\n"), ["before 1900", "row 1"]),
    "missing_dates": Case(text("nodates.csv", H + "A,NEW,2024-01-01,EU\nA,QUAL,,EU\n"),
                          ["no date", "row 2"]),
    "negative_counts": Case(text("neg.csv", CN + "2024-01,NEW,10,EU\n2024-01,QUAL,-3,EU\n"),
                            ["column 'count'", "negative", "row 2: '-3'"]),
    "non_integer_counts": Case(text("frac.csv", CN + "2024-01,NEW,2.5,EU\n2024-01,QUAL,1,EU\n2024-02,NEW,abc,EU\n"),
                               ["whole numbers", "row 1: '2.5'", "row 3: 'abc'"]),
    "missing_counts": Case(text("nocount.csv", CN + "2024-01,NEW,,EU\n"), ["no count", "row 1"]),
    "unknown_stages": Case(text("codes.csv", H + "A,NEW,2024-01-01,EU\nA,qual,2024-02-01,EU\n"
                                "B,DEMO,2024-01-05,EU\nC,CLOSED,2024-01-05,EU\n"),
                           ["column 'stage'", "'qual'", "'DEMO'", "'CLOSED'",
                            "['NEW', 'QUAL', 'WON', 'LOST']", "'qual' -> 'QUAL'"]),
    "snapshot_conflict": Case(text("snap.csv", SN + "2024-01,A,NEW,EU\n2024-01,B,NEW,EU\n2024-01,A,QUAL,EU\n"),
                              ["conflicting stages", "lead 'A' in 2024-01", "['NEW', 'QUAL']", "[1, 3]"]),
    "non_utf8": Case(text("latin.csv", (H + "A,NEW,2024-01-01,Zürich\n").encode("latin-1")),
                     ["not valid UTF-8", "line 2", "--encoding latin-1", "encoding='latin-1'"]),
    "wrong_delimiter_semicolon": Case(text("semi.csv", H.replace(",", ";") + "A;NEW;2024-01-01;EU\n"),
                                      ["--delimiter ';'", "single column"]),
    "wrong_delimiter_tab": Case(text("tabs.csv", H.replace(",", "\t") + "A\tNEW\t2024-01-01\tEU\n"),
                                ["--delimiter", "'\\t'"]),
    "blank_lead_ids": Case(text("blank_ids.csv", H + "A,NEW,2024-01-01,EU\n  ,NEW,2024-01-01,EU\n"),
                           ["column 'lead_id'", "blank lead id", "row 2"]),
    "missing_month_values": Case(text("nomonth.csv", SN + "2024-01,A,NEW,EU\n,B,NEW,EU\n"),
                                 ["column 'month'", "no month", "row 2"]),
    "month_not_yyyy_mm": Case(text("badmonth.csv", SN + "2024/03,A,NEW,EU\nMarch 2024,B,NEW,EU\n2024-1,C,NEW,EU\n"),
                              ["YYYY-MM", "row 1: '2024/03'", "row 2: 'March 2024'", "row 3: '2024-1'"]),
    "month_outside_given_month": Case(text("othermonth.csv", SN + "2024-01,A,NEW,EU\n2024-02,B,NEW,EU\n"),
                                      ["not in the given month 2024-01", "row 2"], ["--month", "2024-01"]),
    "spec_unknown_mapping_key": Case(text("ok.csv", GOOD), ["unknown canonical column", "leadid"],
                                     spec={**SPEC, "columns": {"leadid": "opportunity"}},
                                     error=SpecError, names_file=False),
    "map_unknown_key": Case(text("ok2.csv", GOOD), ["unknown key 'leadid'", "Did you mean 'lead_id'"],
                            ["--map", "leadid=lead_id"], names_file=False),
    "corrupt_parquet": Case(text("broken.parquet", b"PAR1" + os.urandom(64) + b"PAR1"),
                            ["not a readable Parquet file", "export it again"]),
    "duckdb_table_missing": Case(duckdb_table, ["'histroy_raw' does not exist",
                                                "Did you mean 'history_raw'", "Tables there"]),
    "file_not_found": Case(lambda d: str(d / "nope.csv"), ["file not found"]),
    "directory": Case(directory, ["is a directory", "leads.csv"]),
    "ragged_row": Case(text("ragged.csv", H + "A,NEW,2024-01-01,EU\nB,NEW,2024-01-01,EU,extra\n"),
                       ["wrong number of fields", "line 3", "data row 2"]),
    "unterminated_quote": Case(text("quote.csv", H + 'A,NEW,2024-01-01,"EU\nB,NEW,2024-01-01,EU\n'),
                               ["never closed"]),
    "non_numeric_value": Case(text("value.csv", "lead_id,stage,entered_at,region,value\n"
                                   "A,NEW,2024-01-01,EU,1200\nA,QUAL,2024-02-01,EU,\"$1,200\"\n"),
                              ["column 'value'", "not numbers", "row 2: '$1,200'"]),
    "duplicate_header": Case(text("dupcols.csv", "lead_id,stage,stage,entered_at,region\nA,NEW,NEW,2024-01-01,EU\n"),
                             ["duplicate column name", "'stage'"]),
    "shape_undetectable": Case(text("what.csv", "id,status,when,region\nA,NEW,2024-01-01,EU\n"),
                               ["cannot tell the input shape", "history needs", "--map"]),
    "unsupported_extension": Case(text("book.xlsx", b"PK\x03\x04"), ["not supported", "CSV"]),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("store")
    (d / "good.csv").write_text(GOOD)
    spec = d / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    path = d / "funnel.duckdb"
    assert main(["ingest", str(d / "good.csv"), "--spec", str(spec), "--store", str(path)]) == 0
    return path


def _fingerprint(path: Path) -> tuple[str, bool]:
    wal = Path(str(path) + ".wal")
    return hashlib.sha256(path.read_bytes()).hexdigest(), wal.exists()


def _api_args(args: list[str]) -> dict:
    """Translate the CLI options of a case into read_any keyword arguments."""
    out: dict = {}
    it = iter(args)
    for a in it:
        v = next(it)
        if a == "--map":
            out["mapping"] = parse_map([v])
        elif a == "--shape":
            out["shape"] = v
        elif a == "--month":
            out["month"] = v
    return out


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    data = tmp_path / "data"
    data.mkdir()
    file_arg = case.make(data)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(case.spec or SPEC))
    shown_name = Path(file_arg.split("::")[0]).name
    # 1. the Python API raises one FunnelError subclass with a clear message
    with pytest.raises(case.error) as info:
        read_any(file_arg, FunnelSpec.from_yaml(spec_path), **_api_args(case.args))
    msg = str(info.value)
    for fragment in case.expect:
        assert fragment in msg, f"{fragment!r} not in message:\n{msg}"
    if case.names_file:
        assert shown_name in msg, msg
    if case.error is SpecError:
        assert str(spec_path) in msg
    # 2. the CLI exits with 2, prints 'error: ...', and leaves the store unchanged
    before = _fingerprint(store)
    capsys.readouterr()
    code = main(["ingest", file_arg, "--spec", str(spec_path), "--store", str(store), *case.args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert case.expect[0] in err
    assert _fingerprint(store) == before


def test_at_most_five_rows_are_shown(tmp_path: Path) -> None:
    rows = "".join(f"L{i},NEW,not-a-date-{i},EU\n" for i in range(1, 9))
    f = tmp_path / "many.csv"
    f.write_text(H + rows)
    with pytest.raises(FunnelDataError) as info:
        read_any(f, SPEC)
    msg = str(info.value)
    assert "8 values are not dates" in msg
    assert all(f"row {i}: 'not-a-date-{i}'" in msg for i in range(1, 6))
    assert "row 6" not in msg and "and 3 more" in msg


def test_several_problems_are_reported_in_one_message(tmp_path: Path) -> None:
    f = tmp_path / "multi.csv"
    f.write_text(H + ",NEW,2024-01-01,EU\nB,NOPE,2024-01-01,EU\nC,NEW,someday,EU\n")
    with pytest.raises(FunnelDataError) as info:
        read_any(f, SPEC)
    msg = str(info.value)
    assert msg.startswith(f"{f}: 3 problems")
    assert "blank lead id -- row 1" in msg and "'NOPE'" in msg and "row 3: 'someday'" in msg


def test_unknown_stages_lists_every_value(tmp_path: Path) -> None:
    bad = [f"S{i}" for i in range(12)]
    f = tmp_path / "codes.csv"
    f.write_text(H + "".join(f"L{i},{c},2024-01-01,EU\n" for i, c in enumerate(bad)))
    with pytest.raises(FunnelDataError) as info:
        read_any(f, SPEC)
    assert all(f"'{c}'" in str(info.value) for c in bad)


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The real `python -m funnel_models.cli` process exits 2 on bad input."""
    f = tmp_path / "semi.csv"
    f.write_text("lead_id;stage;entered_at\nA;NEW;2024-01-01\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in SPEC.items() if k != "attributes"}))
    proc = subprocess.run([sys.executable, "-m", "funnel_models.cli", "ingest", str(f), "--spec",
                           str(spec), "--store", str(tmp_path / "s.duckdb")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--delimiter ';'" in proc.stderr
    assert not (tmp_path / "s.duckdb").exists()
