"""A corpus of hostile inputs for the data commands (ingest, status, init).

Every case must give its documented exit status (2 bad input; 3 busy is covered in
test_store.py), print one ``error:`` message that names the problem and the fix, never a
traceback, and leave every store it touches byte-identical.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import pytest
import yaml

from funnel_models.cli import main

SPEC = {"stages": [{"code": "NEW", "name": "New"}, {"code": "QUAL", "name": "Qualified"}],
        "won": ["WON"], "lost": ["LOST"], "attributes": ["region"]}
DEALS_SPEC = {"stages": [{"code": "NEW", "name": "New", "date_column": "created"}], "won": ["WON"], "lost": ["LOST"],
              "status": {"column": "status", "won": ["Won"], "lost": ["Lost"], "open": ["Open"]},
              "closed_at": "closed"}
H = "lead_id,stage,entered_at,region\n"
GOOD = H + "A,NEW,2024-01-02,EU\nA,QUAL,2024-02-03,EU\nB,NEW,2024-01-09,US\n"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Env:
    """Where a case writes its files, and the good spec and store it may use."""

    dir: Path
    spec: Path
    store: Path

    def file(self, name: str, content: str | bytes) -> str:
        p = self.dir / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(p)

    def ingest(self, data: str, spec: str | None = None, *extra: str) -> list[str]:
        return ["ingest", data, "--spec", spec or str(self.spec), "--store", str(self.store), *extra]

    def spec_file(self, name: str, text: str | bytes) -> str:
        return self.file(name, text)


@dataclass
class Case:
    argv: Callable[[Env], list[str]]
    expect: list[str]          # fragments of the message: the problem ...
    fix: str = "Fix:"          # ... and the fix
    code: int = 2


def _deals(env: Env, rows: str) -> list[str]:
    spec = env.spec_file("deals.yaml", yaml.safe_dump(DEALS_SPEC))
    return env.ingest(env.file("deals.csv", "deal_id,created,status,closed\n" + rows), spec, "--map", "lead_id=deal_id")


def _big_nul(env: Env) -> list[str]:
    body = "".join(f"L{i},NEW,2024-01-02,EU\n" for i in range(4000))  # > 64 KiB before the NUL
    return env.ingest(env.file("late_nul.csv", H + body + "L\x00X,NEW,2024-01-02,EU\n"))


def _other_funnel(env: Env) -> list[str]:
    spec = env.spec_file("other.yaml", yaml.safe_dump({**SPEC, "stages": ["NEW", "QUAL", "PROP"]}))
    return env.ingest(env.file("good2.csv", GOOD), spec)


def _missing_table(env: Env) -> list[str]:
    p = env.dir / "warehouse.duckdb"
    with duckdb.connect(str(p)) as con:
        con.execute("CREATE TABLE history_raw AS SELECT 'A' AS lead_id")
    return env.ingest(f"{p}::histroy_raw")


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 15)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

CASES: dict[str, Case] = {
    # --- the data file itself
    "binary_file": Case(lambda e: e.ingest(e.file("blob.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000))),
                        ["contains NUL bytes", "binary"]),
    "empty_file": Case(lambda e: e.ingest(e.file("empty.csv", b"")), ["empty (0 bytes)"]),
    "blank_lines_only": Case(lambda e: e.ingest(e.file("blank.csv", "\n \n\n")), ["only blank lines"]),
    "header_only": Case(lambda e: e.ingest(e.file("header.csv", H)), ["header but no data rows"]),
    "huge_line": Case(lambda e: e.ingest(e.file("huge.csv", H + "A,NEW,2024-01-02," + "x" * 3_000_000 + "\n")),
                      ["longer than DuckDB reads", "line 2"]),
    "huge_header": Case(lambda e: e.ingest(e.file("hugeh.csv", "a" * 200_000 + "\n1\n")),
                        ["could not read the header row"]),
    "latin1_encoding": Case(lambda e: e.ingest(e.file("latin.csv", (H + "A,NEW,2024-01-02,Zürich\n").encode("latin-1"))),
                            ["not valid UTF-8", "--encoding latin-1"]),
    "utf16_without_option": Case(lambda e: e.ingest(e.file("u16.csv", GOOD.encode("utf-16"))),
                                 ["UTF-16 encoded", "encoding='utf-16'"]),
    "unknown_encoding": Case(lambda e: e.ingest(e.file("x.csv", GOOD), None, "--encoding", "klingon"),
                             ["unknown encoding 'klingon'"]),
    "nul_after_64k": Case(_big_nul, ["lead id contains a NUL character", "row 4001"]),
    "ragged_row": Case(lambda e: e.ingest(e.file("ragged.csv", GOOD + "C,NEW,2024-01-02,EU,extra\n")),
                       ["wrong number of fields", "line 5"]),
    "unclosed_quote": Case(lambda e: e.ingest(e.file("quote.csv", H + 'A,NEW,2024-01-02,"EU\n')), ["never closed"]),
    "corrupt_parquet": Case(lambda e: e.ingest(e.file("x.parquet", b"PAR1" + os.urandom(100) + b"PAR1")),
                            ["not a readable Parquet file"]),
    "spreadsheet": Case(lambda e: e.ingest(e.file("book.xlsx", b"PK\x03\x04" + os.urandom(50))), ["not supported"]),
    "data_is_directory": Case(lambda e: e.ingest(str(e.dir)), ["is a directory, not a file"]),
    "data_missing": Case(lambda e: e.ingest(str(e.dir / "nope.csv")), ["file not found"]),
    "duckdb_table_missing": Case(_missing_table, ["'histroy_raw' does not exist", "Did you mean 'history_raw'"]),
    # --- contents
    "missing_columns": Case(lambda e: e.ingest(e.file("cols.csv", "lead_id,stage,region\nA,NEW,EU\n"), None,
                                               "--shape", "history"), ["missing column", "'entered_at'"]),
    "unknown_codes": Case(lambda e: e.ingest(e.file("codes.csv", H + "A,NEW,2024-01-02,EU\nA,qual,2024-02-02,EU\n")),
                          ["not declared in the spec", "'qual' -> 'QUAL'"]),
    "conflicting_outcomes": Case(lambda e: e.ingest(e.file("both.csv", H + "A,NEW,2024-01-02,EU\nA,WON,2024-02-02,EU\n"
                                                           "A,LOST,2024-02-02,EU\n")),
                                 ["both won and lost at the same time", "lead 'A'"]),
    "mixed_tz_conflict": Case(lambda e: e.ingest(e.file("tz.csv", H + "A,NEW,2024-01-02,EU\n"
                                                        "A,WON,2024-02-02T10:00:00+02:00,EU\nA,LOST,2024-02-02T08:00:00Z,EU\n")),
                              ["both won and lost at the same time", "2024-02-02 08:00:00"]),
    "future_dates": Case(lambda e: e.ingest(e.file("future.csv", H + "A,NEW,2999-01-02,EU\n")), ["in the future"]),
    "ancient_dates": Case(lambda e: e.ingest(e.file("old.csv", H + "A,NEW,0202-01-02,EU\n")), ["before 1900"]),
    "not_dates": Case(lambda e: e.ingest(e.file("dates.csv", H + "A,NEW,yesterday,EU\n")), ["not a date", "ISO 8601"]),
    "blank_lead_ids": Case(lambda e: e.ingest(e.file("ids.csv", H + " ,NEW,2024-01-02,EU\n")), ["blank lead id"]),
    "snapshot_conflict": Case(lambda e: e.ingest(e.file("snap.csv", "month,lead_id,stage,region\n2024-01,A,NEW,EU\n"
                                                        "2024-01,A,QUAL,EU\n")), ["conflicting stages"]),
    "negative_counts": Case(lambda e: e.ingest(e.file("neg.csv", "month,stage,count,region\n2024-01,NEW,-3,EU\n")),
                            ["negative"]),
    "deals_duplicate_ids": Case(lambda e: _deals(e, "d1,2024-01-02,Open,\nd1,2024-01-03,Open,\n"),
                                ["deal id appears more than once"]),
    "deals_won_without_date": Case(lambda e: _deals(e, "d1,2024-01-02,Won,\n"), ["no close date"]),
    "deals_unlisted_status": Case(lambda e: _deals(e, "d1,2024-01-02,Maybe,\n"), ["not listed in the spec", "'Maybe'"]),
    # --- the spec
    "spec_duplicate_keys": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("dup.yaml", yaml.safe_dump(SPEC)
                                                                                   + "won: [CLOSED]\n")),
                                ["duplicate key 'won'"]),
    "spec_alias_bomb": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("bomb.yaml", ALIAS_BOMB)),
                            ["more than 100 aliases"]),
    "spec_is_directory": Case(lambda e: e.ingest(e.file("g.csv", GOOD), str(e.dir)), ["is a folder, not a funnel spec"]),
    "spec_missing": Case(lambda e: e.ingest(e.file("g.csv", GOOD), str(e.dir / "nope.yaml")), ["spec file not found"]),
    "spec_binary": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("s.yaml", b"\xff\xfe\x00\x01binary")),
                        ["not UTF-8 text"]),
    "spec_not_a_mapping": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("l.yaml", "- NEW\n- WON\n")),
                               ["must be a mapping"]),
    "spec_huge": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("big.yaml", "# " + "x" * 1_100_000)),
                      ["larger than 1,000,000 bytes"]),
    "spec_bad_yaml": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("bad.yaml", "stages: [NEW\n")),
                          ["not valid YAML"]),
    "spec_bad_timezone": Case(lambda e: e.ingest(e.file("g.csv", GOOD), e.spec_file("tz.yaml", yaml.safe_dump(
        {**SPEC, "timezone": "Mars/Olympus"}))), ["unknown zone 'Mars/Olympus'"], fix="use an IANA name"),
    "spec_other_funnel": Case(_other_funnel, ["differs from the one recorded", "stages:"]),
    # --- options and stores
    "bad_month_option": Case(lambda e: e.ingest(e.file("g.csv", GOOD), None, "--month", "March"), ["not a month"],
                             fix="write it as YYYY-MM"),
    "bad_map_option": Case(lambda e: e.ingest(e.file("g.csv", GOOD), None, "--map", "lead_id"),
                           ["is not canonical=column"], fix="write e.g."),
    "store_is_directory": Case(lambda e: [*e.ingest(e.file("g.csv", GOOD))[:4], "--store", str(e.dir)],
                               ["is a directory"]),
    "store_not_duckdb": Case(lambda e: [*e.ingest(e.file("g.csv", GOOD))[:4], "--store", e.file("x.duckdb", "not a db\n" * 50)],
                             ["cannot open it as a DuckDB database"]),
    "status_no_store": Case(lambda e: ["status", "--store", str(e.dir / "none.duckdb")], ["no store at"]),
    "status_not_duckdb": Case(lambda e: ["status", "--store", e.file("y.duckdb", b"\x00" * 4096)],
                              ["cannot open it as a DuckDB database"]),
    "init_binary": Case(lambda e: ["init", e.file("blob2.csv", b"\x00\x01\x02" * 100), "--out-dir", str(e.dir / "o")],
                        ["contains NUL bytes"]),
    "init_unrecognised": Case(lambda e: ["init", e.file("words.csv", "word,score\nhi,1\n"), "--out-dir", str(e.dir / "o")],
                              ["cannot recognise the shape"]),
}


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


def _fingerprints(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*.duckdb*")) if p.is_file()}


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("good")
    spec = d / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    (d / "good.csv").write_text(GOOD)
    store = d / "funnel.duckdb"
    assert main(["ingest", str(d / "good.csv"), "--spec", str(spec), "--store", str(store)]) == 0
    return spec, store


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, tmp_path: Path, good_store: tuple[Path, Path],
                       capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    spec, store = good_store
    env = Env(tmp_path, spec, store)
    argv = case.argv(env)
    before, local = _fingerprints(store.parent), _fingerprints(tmp_path)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.code, err
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    for fragment in case.expect + [case.fix]:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert _fingerprints(store.parent) == before            # the shared store: byte-identical
    assert _fingerprints(tmp_path) == local                 # and any store file the case made
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())   # init wrote nothing


@pytest.mark.parametrize("name", ["binary_file", "spec_alias_bomb", "spec_is_directory", "huge_line"])
def test_real_process_prints_no_traceback(name: str, tmp_path: Path, good_store: tuple[Path, Path]) -> None:
    spec, store = good_store
    local_store = tmp_path / "s.duckdb"
    argv = CASES[name].argv(Env(tmp_path, spec, local_store))
    proc = subprocess.run([sys.executable, "-m", "funnel_models.cli", *argv], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert not local_store.exists()


@pytest.mark.parametrize("rows,note", [
    ("A,NEW,2024-01-02T09:00:00+02:00,EU\nA,QUAL,2024-01-02T08:30:00Z,EU\n", "converted to UTC"),
    ("A,NEW,1970-01-01,EU\nA,QUAL,2024-01-02,EU\n", "which exports use for 'unknown'"),
])
def test_suspicious_but_usable_input_is_stored_with_a_note(rows: str, note: str, tmp_path: Path,
                                                            good_store: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec, _ = good_store
    f = tmp_path / "x.csv"
    f.write_text(H + rows)
    assert main(["ingest", str(f), "--spec", str(spec), "--store", str(tmp_path / "s.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "warnings: 1" in out and note in out
