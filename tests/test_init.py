"""funnel init: recognise an export, write a spec and parameters that `funnel ingest` takes unedited."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from funnel_models.cli import main
from funnel_models.data.infer import guess_spec
from funnel_models.data.spec import FunnelSpec
from funnel_models.data.store import Store
from funnel_models.datasets.olist import OLIST_LEADS_FILE, olist_dir, olist_opportunities
from funnel_models.params import load_parameter_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _init_then_ingest(data: str, tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, Path]:
    """Run `funnel init`, then exactly the `funnel ingest` command it printed; return the
    init output and the parameters file."""
    store = tmp / "funnel.duckdb"
    assert main(["init", data, "--out-dir", str(tmp), "--store", str(store), *extra]) == 0
    out = capsys.readouterr().out
    next_cmds = [shlex.split(line.strip()) for line in out.split("next:\n")[1].splitlines()]
    assert [c[:2] for c in next_cmds] == [["funnel", "ingest"], ["funnel", "report"]]
    assert main(next_cmds[0][1:]) == 0, capsys.readouterr().err
    params_path = Path(next_cmds[1][2])
    params, _ = load_parameter_file(params_path)
    assert params.source == str(store) and Path(params.spec).is_file()
    FunnelSpec.from_yaml(params.spec)
    assert set(params.factors) <= set(Store(store).spec().attributes)
    return out, params_path


def test_stage_history_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, params = _init_then_ingest(str(FIXTURES / "crm_stage_history.csv"), tmp_path, capsys)
    assert "as stage history" in out
    assert "stage order NEW > CONTACTED > DEMO > PROPOSAL (from the dates) -- CHECK" in out   # the generator's order
    assert "won: ['WON']; lost: ['DISQUALIFIED', 'LOST']" in out and "deal value: column 'Amount'" in out
    assert "not used: 'Notes'" in out
    spec = Store(tmp_path / "funnel.duckdb").spec()
    assert spec.codes == ("NEW", "CONTACTED", "DEMO", "PROPOSAL") and spec.value == "value"
    st = Store(tmp_path / "funnel.duckdb").status()["tables"]["history"]
    assert (st["rows"], st["leads"]) == (422, 120)


def test_monthly_snapshots_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = _init_then_ingest(str(FIXTURES / "crm_monthly_snapshots.csv"), tmp_path, capsys)
    assert "as monthly snapshots" in out and "stage order Lead > Qualified > Demo > Proposal" in out
    assert Store(tmp_path / "funnel.duckdb").read_any()[0] == "snapshots"


def test_one_row_per_deal_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = _init_then_ingest(str(FIXTURES / "hubspot_deals.csv"), tmp_path, capsys)
    assert "one row per deal: id 'Record ID'" in out
    assert "outcome: column 'Deal Stage' (won ['Closed Won'], lost ['Closed Lost']" in out
    assert "not used as milestones: ['Last Modified Date']" in out
    spec = FunnelSpec.from_yaml(tmp_path / "hubspot_deals.spec.yaml")
    assert spec.codes == ("CREATE", "QUALIFIED_TO_BUY", "PRESENTATION_SCHEDULED", "CONTRACT_SENT")
    assert spec.status is not None and spec.closed_at == "Close Date"
    stages = Store(tmp_path / "funnel.duckdb").status()["tables"]["history"]["stages"]
    assert stages == {"CREATE": 120, "QUALIFIED_TO_BUY": 96, "PRESENTATION_SCHEDULED": 67, "CONTRACT_SENT": 42,
                      "WON": 11, "LOST": 86}    # as in crm_stage_history.csv (LOST + DISQUALIFIED)


def test_parquet_and_duckdb_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = pd.read_csv(FIXTURES / "crm_stage_history.csv", dtype=str)
    raw["Changed At"] = pd.to_datetime(raw["Changed At"])
    raw.to_parquet(tmp_path / "export.parquet")
    out, _ = _init_then_ingest(str(tmp_path / "export.parquet"), tmp_path / "pq", capsys)
    assert "as stage history" in out
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE deals AS SELECT * FROM read_csv(?, all_varchar=true)", [str(FIXTURES / "hubspot_deals.csv")])
    out, params = _init_then_ingest(f"{db}::deals", tmp_path / "db", capsys)
    assert params.name == "deals.params.yaml" and "one row per deal" in out


@pytest.mark.skipif(not (olist_dir() / OLIST_LEADS_FILE).is_file(), reason=f"Olist data not found at {olist_dir()}")
def test_olist_leads_joined_with_deals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "olist_leads.csv"
    olist_opportunities().to_csv(f, index=False)
    out, _ = _init_then_ingest(str(f), tmp_path, capsys)
    assert "outcome: won at 'won_date'" in out and "no loss is recorded" in out
    st = Store(tmp_path / "funnel.duckdb").status()["tables"]["history"]
    assert (st["leads"], st["stages"]) == (8000, {"FIRST_CONTACT": 8000, "WON": 842})


def test_counts_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "monthly_counts.csv"
    f.write_text("month,stage,leads,region\n" + "".join(
        f"2024-0{m},{s},{n * (m + 1)},{r}\n" for m in range(1, 4) for s, n in (("MQL", 50), ("SQL", 20), ("Won", 5),
                                                                               ("Lost", 9)) for r in ("EU", "US")))
    out, _ = _init_then_ingest(str(f), tmp_path, capsys)
    assert "aggregate counts" in out and "stage order MQL > SQL" in out and "ordered by volume" in out


def test_existing_files_are_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(FIXTURES / "crm_stage_history.csv")
    spec = tmp_path / "crm_stage_history.spec.yaml"
    spec.write_text("# mine\n")
    assert main(["init", data, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err and "Traceback" not in err
    assert spec.read_text() == "# mine\n" and not (tmp_path / "crm_stage_history.params.yaml").exists()
    assert main(["init", data, "--out-dir", str(tmp_path), "--force"]) == 0
    assert "stages:" in spec.read_text()


def test_unrecognised_export_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "notes.csv"
    f.write_text("comment,score\nhello,1\nworld,2\n")
    assert main(["init", str(f), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot recognise the shape" in err and "Fix:" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]


def test_what_ingest_would_refuse_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "h.csv"
    f.write_text("lead_id,stage,changed_at\na,New,2024-01-01\na,Won,2024-02-01\nb,New,2024-01-03\nb,Lost,2999-01-01\n")
    assert main(["init", str(f), "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "note: `funnel ingest` will refuse the data as it is" in out and "future" in out


def test_guess_lists_its_assumptions_for_each_role() -> None:
    g = guess_spec(FIXTURES / "crm_stage_history.csv")
    text = "\n".join(g.assumptions)
    for word in ("lead id: column 'Deal ID'", "stage: column 'Stage'", "date: column 'Changed At'",
                 "stage order", "won:", "attributes: Region (3 values)"):
        assert word in text
    assert g.factors == ["Region"] and g.spec["columns"]["entered_at"] == "Changed At"


# ---------------------------------------------------------------- the written files run a report
REPORT_FIXTURES = ["crm_stage_history.csv", "crm_monthly_snapshots.csv", "hubspot_deals.csv"]


def _printed_report(fixture: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    out, _ = _init_then_ingest(str(FIXTURES / fixture), tmp, capsys)
    cmd = shlex.split(out.split("next:\n")[1].splitlines()[1].strip())
    assert cmd[:2] == ["funnel", "report"]
    return cmd


@pytest.mark.parametrize("fixture", REPORT_FIXTURES)
def test_written_files_pass_the_report_preflight(fixture: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from funnel_models.reports.runner import plan_run
    cmd = _printed_report(fixture, tmp_path, capsys)
    for notebook in ("monthly_report", "lead_planning", "backtest"):
        if notebook == "backtest" and "snapshots" in fixture:
            continue                                   # the backtest needs stage history
        plan = plan_run(notebook, cmd[2], None, "2026-01-31")
        assert plan.params.source.endswith("funnel.duckdb")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", REPORT_FIXTURES)
def test_written_files_run_funnel_report_unedited(fixture: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cmd = _printed_report(fixture, tmp_path, capsys)
    funnel = str(Path(sys.executable).with_name("funnel"))
    r = subprocess.run([funnel, *cmd[1:], "--output-dir", str(tmp_path / "out"), "--date", "2026-01-31", "--quiet"],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr
    summary = next((tmp_path / "out").glob("*/2026-01-31/summary.json"))
    assert json.loads(summary.read_text())["data"]["source"].endswith("funnel.duckdb")
