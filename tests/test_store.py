"""Store: replace semantics, reads, status, atomicity (rollback and SIGKILL mid-ingest), CLI."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from funnel_models.cli import main
from funnel_models.data.spec import FunnelSpec
from funnel_models.data.store import Store
from funnel_models.errors import FunnelDataError, SpecError

SPEC = {"stages": [{"code": "NEW", "name": "New"}, {"code": "QUAL", "name": "Qualified"}],
        "won": ["WON"], "lost": ["LOST"], "attributes": ["region"]}
REPO = Path(__file__).resolve().parents[1]


def hist(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["lead_id", "stage", "entered_at", "region"])
    df["entered_at"] = pd.to_datetime(df["entered_at"])
    return df


H1 = hist([("A", "NEW", "2024-01-02", "EU"), ("A", "QUAL", "2024-02-03", "EU"),
           ("B", "NEW", "2024-01-09", "US"), ("C", "NEW", "2024-02-10", "EU")])


def test_history_reingest_replaces_by_lead(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.duckdb")
    r1 = store.ingest(H1, "history", source="h1.csv")
    assert (r1.rows, r1.leads, r1.replaced_rows, r1.mode) == (4, 3, 0, "replace-leads")
    assert r1.months == ["2024-01", "2024-02"]
    r2 = store.ingest(H1, "history")                      # same data again: no duplicates
    assert r2.replaced_rows == 4
    pd.testing.assert_frame_equal(store.read("history"), store.read("history"))
    assert len(store.read("history")) == 4
    # an updated export of lead A (now won) and a new lead D; B and C untouched
    h2 = hist([("A", "NEW", "2024-01-02", "EU"), ("A", "WON", "2024-03-01", "EU"),
               ("D", "NEW", "2024-03-05", "US")])
    r3 = store.ingest(h2, "history")
    assert r3.replaced_rows == 2
    got = store.read("history")
    assert list(zip(got["lead_id"], got["stage"])) == [("A", "NEW"), ("A", "WON"), ("B", "NEW"),
                                                       ("C", "NEW"), ("D", "NEW")]
    assert got["entered_at"].dtype == "datetime64[ns]" and got["lead_id"].dtype == "str"
    log = store.ingests()
    assert log["id"].tolist() == [1, 2, 3] and log["source"].tolist()[0] == "h1.csv"


def test_history_month_mode_replaces_that_month_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.duckdb")
    store.ingest(H1, "history")
    feb = hist([("A", "WON", "2024-02-20", "EU"), ("E", "NEW", "2024-02-01", "US")])
    r = store.ingest(feb, "history", month="2024-02")
    assert (r.mode, r.replaced_rows) == ("replace-months", 2)   # A/QUAL and C/NEW were in February
    got = store.read("history")
    assert sorted(zip(got["lead_id"], got["stage"])) == [("A", "NEW"), ("A", "WON"), ("B", "NEW"), ("E", "NEW")]
    with pytest.raises(FunnelDataError, match="1 row\\(s\\) are in other months"):
        store.ingest(hist([("Z", "NEW", "2024-04-01", "EU")]), "history", month="2024-03")


def test_snapshots_and_counts_replace_months(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.duckdb")
    snap = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01"]),
                         "lead_id": ["A", "B", "A"], "stage": ["NEW", "NEW", "QUAL"]})
    store.ingest(snap, "snapshots")
    march = pd.DataFrame({"lead_id": ["A", "B"], "stage": ["WON", "LOST"], "region": ["EU", "US"]})
    store.ingest(march, "snapshots", month="2024-03")              # no month column: filled
    store.ingest(march.assign(stage=["QUAL", "QUAL"]), "snapshots", month="2024-03")  # replaced
    got = store.read("snapshots", months=["2024-03"])
    assert got["stage"].tolist() == ["QUAL", "QUAL"] and got["region"].tolist() == ["EU", "US"]
    assert len(store.read("snapshots")) == 5
    assert store.read("snapshots", months="2024-01")["region"].isna().all()  # attribute added later

    counts = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-01-01"]), "stage": ["NEW", "WON"],
                           "count": [10, 2], "region": ["EU", "EU"]})
    store.ingest(counts, "counts")
    store.ingest(counts.assign(count=[11, 3]), "counts")
    got = store.read("counts")
    assert got["count"].tolist() == [11, 3] and got["count"].dtype == "int64"
    with pytest.raises(FunnelDataError, match="repeat the key"):
        store.ingest(pd.concat([counts, counts]), "counts")


def test_read_filters_and_status(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.duckdb")
    assert store.status()["exists"] is False
    store.ingest(H1, "history")
    assert store.read("history", filters={"region": "EU"})["lead_id"].tolist() == ["A", "A", "C"]
    assert store.read("history", filters={"stage": ["QUAL"], "region": ["EU", "US"]})["lead_id"].tolist() == ["A"]
    assert store.read("history", months="2024-01")["lead_id"].tolist() == ["A", "B"]
    with pytest.raises(FunnelDataError, match="cannot filter history on 'channel'"):
        store.read("history", filters={"channel": "x"})
    with pytest.raises(FunnelDataError, match="no counts has been ingested"):
        store.read("counts")
    st = store.status()
    assert st["ingests"] == 1
    assert st["tables"]["history"] == {"rows": 4, "leads": 3, "months": ["2024-01", "2024-02"],
                                       "stages": {"NEW": 3, "QUAL": 1}, "attributes": ["region"]}


def _fail_after(method_name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``Store.<method_name>`` (a step inside the ingest transaction) do its work and
    then raise; returns a list that records how often it ran."""
    ran: list[int] = []
    original = getattr(Store, method_name)

    def failing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        ran.append(1)
        raise RuntimeError("simulated failure inside the ingest transaction")
    monkeypatch.setattr(Store, method_name, failing)
    return ran


def test_failed_ingest_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "f.duckdb")
    store.ingest(H1, "history", spec=FunnelSpec.from_dict(SPEC))
    before, status_before = store.read("history"), store.status()
    with monkeypatch.context() as m:
        ran = _fail_after("_log", m)  # after the delete, the insert and the log entry
        with pytest.raises(RuntimeError, match="simulated failure"):
            store.ingest(hist([("A", "LOST", "2024-03-01", "EU"), ("N", "NEW", "2024-03-01", "EU")]),
                         "history", source="new.csv")
        assert ran == [1]
    pd.testing.assert_frame_equal(store.read("history"), before)
    assert store.ingests()["id"].tolist() == [1] and store.status() == status_before
    with monkeypatch.context() as m:  # a failed first ingest of a shape leaves no table
        _fail_after("_write", m)
        with pytest.raises(RuntimeError):
            store.ingest(pd.DataFrame({"month": ["2024-01"], "stage": ["NEW"], "count": [1]}), "counts")
    assert "counts" not in store.status()["tables"]
    fresh = Store(tmp_path / "g.duckdb")  # nor a recorded spec in a new store
    with monkeypatch.context() as m:
        _fail_after("_log", m)
        with pytest.raises(RuntimeError):
            fresh.ingest(H1, "history", spec=FunnelSpec.from_dict(SPEC))
    with pytest.raises(FunnelDataError, match="no funnel spec was recorded"):
        fresh.spec()


def _big_history(path: Path, n_leads: int) -> None:
    """Write a stage-history CSV with DuckDB (fast); lead ids L0.. overlap the small store."""
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 'L' || (i // 2) AS lead_id, CASE WHEN i % 2 = 0 THEN 'NEW' ELSE 'QUAL' END AS stage,
                     TIMESTAMP '2023-01-01' + to_days(CAST(i % 500 AS INTEGER)) AS entered_at,
                     CASE WHEN i % 3 = 0 THEN 'EU' ELSE 'US' END AS region
                     FROM range({2 * n_leads}) t(i)) TO '{path}' (HEADER)""")


# The real `funnel` command in a child process, with Store._log (the last step inside the
# ingest transaction, after the delete and the insert) patched to announce itself and pause.
_PAUSING_INGEST = """
import sys, time
from funnel_models.cli import main
from funnel_models.data.store import Store
original = Store._log
def pausing(self, *args, **kwargs):
    report = original(self, *args, **kwargs)
    print("PAUSED_IN_TRANSACTION", file=sys.stderr, flush=True)
    time.sleep(60)
    return report
Store._log = pausing
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_ingest_leaves_previous_state(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    small = tmp_path / "small.csv"
    small.write_text("lead_id,stage,entered_at,region\nL1,NEW,2022-05-01,EU\nL1,WON,2022-06-01,EU\n"
                     "X9,NEW,2022-05-03,US\n")
    store_path = tmp_path / "funnel.duckdb"
    assert main(["ingest", str(small), "--spec", str(spec), "--store", str(store_path)]) == 0
    store = Store(store_path)
    before, log_before = store.read("history"), store.ingests()

    big = tmp_path / "big.csv"
    _big_history(big, 150_000)  # 300,000 rows; its leads include L1, so the delete hits stored rows
    proc = subprocess.Popen([sys.executable, "-c", _PAUSING_INGEST, "ingest", str(big), "--spec",
                             str(spec), "--store", str(store_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []  # the marker is printed inside the transaction, after the delete and insert
        for line in proc.stderr:
            seen.append(line)
            if line.strip() == "PAUSED_IN_TRANSACTION" or len(seen) > 50:
                break
        assert seen and seen[-1].strip() == "PAUSED_IN_TRANSACTION", "".join(seen)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # reopen: the previous state is intact and readable
    pd.testing.assert_frame_equal(Store(store_path).read("history"), before)
    pd.testing.assert_frame_equal(Store(store_path).ingests(), log_before)
    # and the store still takes a full ingest afterwards
    assert main(["ingest", str(big), "--spec", str(spec), "--store", str(store_path)]) == 0
    got = Store(store_path).status()["tables"]["history"]
    assert got["rows"] == 300_000 + 1 and got["leads"] == 150_000 + 1  # X9 kept, L1 replaced


def test_cli_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    f = tmp_path / "c.csv"
    f.write_text("stage,count,region\nNEW,12,EU\nQUAL,4,EU\n")
    store = tmp_path / "s.duckdb"
    assert main(["status", "--store", str(store)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert main(["ingest", str(f), "--spec", str(spec), "--store", str(store), "--month", "2024-05"]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 counts rows" in out and "2024-05" in out
    assert main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "counts: 2 rows" in out and "months: 2024-05" in out and "NEW 12, QUAL 4" in out


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("ingest", "status"):
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        assert "examples:" in capsys.readouterr().out


# ---------------------------------------------------------------- the recorded spec
def test_store_records_the_spec_and_refuses_another_funnel(tmp_path: Path) -> None:
    spec = FunnelSpec.from_dict({**SPEC, "columns": {"lead_id": "opp"}, "value": "amount"})
    store = Store(tmp_path / "f.duckdb")
    store.ingest(H1, "history", spec=spec)
    got = store.spec()
    assert got.codes == ("NEW", "QUAL") and got.won == ("WON",) and got.attributes == ("region",)
    assert got.columns == {} and got.value is None          # the stored tables are canonical
    store.ingest(H1, "history", spec=FunnelSpec.from_dict({**SPEC, "columns": {"lead_id": "other"}}))  # same funnel
    before = (tmp_path / "f.duckdb").read_bytes()
    other = FunnelSpec.from_dict({**SPEC, "stages": ["NEW", "QUAL", "PROP"]})
    with pytest.raises(SpecError) as info:
        store.ingest(H1, "history", spec=other)
    assert "differs from the one recorded" in str(info.value) and "--store NEW.duckdb" in str(info.value)
    assert (tmp_path / "f.duckdb").read_bytes() == before
    with pytest.raises(FunnelDataError, match="isin"):   # no spec passed: codes checked against the recorded one
        store.ingest(hist([("Z", "DEMO", "2024-03-01", "EU")]), "history")


def test_read_any_and_status_in_funnel_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = FunnelSpec.from_dict({"stages": ["ZED", "ALPHA"], "won": ["WON"], "lost": ["LOST"]})
    store = Store(tmp_path / "f.duckdb")
    counts = pd.DataFrame({"month": ["2024-01"] * 3, "stage": ["LOST", "ALPHA", "ZED"], "count": [1, 2, 3]})
    store.ingest(counts, "counts", spec=spec)
    assert store.read_any()[0] == "counts"
    assert list(store.status()["tables"]["counts"]["stages"]) == ["ZED", "ALPHA", "LOST"]
    snaps = pd.DataFrame({"month": ["2024-01", "2024-01"], "lead_id": ["a", "b"], "stage": ["ALPHA", "ZED"]})
    report = store.ingest(snaps, "snapshots", spec=spec)
    assert list(report.stages) == ["ZED", "ALPHA"]
    shape, df = store.read_any()
    assert shape == "snapshots" and df["lead_id"].tolist() == ["a", "b"]
    assert store.shapes() == ["snapshots", "counts"]
    assert main(["status", "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "funnel: ZED > ALPHA; won ['WON']; lost ['LOST']" in out
    assert "stages: ZED 1, ALPHA 1" in out and "stages: ZED 3, ALPHA 2, LOST 1" in out


# ---------------------------------------------------------------- busy stores and pipes
_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
time.sleep(60)
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_store_exits_3_at_once_and_waits_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    f = tmp_path / "h.csv"
    f.write_text("lead_id,stage,entered_at,region\nA,NEW,2024-01-02,EU\n")
    path = tmp_path / "funnel.duckdb"
    assert main(["ingest", str(f), "--spec", str(spec), "--store", str(path)]) == 0
    before = path.read_bytes()
    holder = _hold(path, 120)
    try:
        capsys.readouterr()
        for argv in (["ingest", str(f), "--spec", str(spec), "--store", str(path)], ["status", "--store", str(path)]):
            assert main(argv) == 3
            err = capsys.readouterr().err
            assert err.startswith("error: store") and "in use by another process" in err and "--wait SECONDS" in err
            assert holder.poll() is None        # it returned while the lock is still held: nothing waited
    finally:
        holder.kill()
        holder.wait()
    assert path.read_bytes() == before
    holder = _hold(path, 1.0)                   # releases after a second
    try:
        assert main(["status", "--store", str(path), "--wait", "60"]) == 0
        assert "history: 1 rows" in capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(FunnelDataError, match="wait must be"):
        Store(path, wait=-1)


def test_output_to_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.duckdb")
    store.ingest(H1, "history", spec=FunnelSpec.from_dict(SPEC))
    proc = subprocess.Popen([sys.executable, "-m", "funnel_models.cli", "status", "--store", str(store.path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                         # the reader is gone before anything is written (| head -0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""
    shell = subprocess.run(f"{sys.executable} -m funnel_models.cli status --store '{store.path}' | head -2",
                           shell=True, cwd=REPO, capture_output=True, text=True)
    assert shell.stdout.count("\n") == 2 and shell.stderr == ""
