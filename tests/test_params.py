"""Parameter files as the commands and notebooks use them: one schema family, layering,
notebooks declaring exactly the parameters the runner passes, jupytext pairing, templates."""
from __future__ import annotations

import ast
import filecmp
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from funnel_models.errors import ParameterError
from funnel_models.params import (ParameterFile, from_notebook, load_parameter_file, notebook_parameters)
from funnel_models.reports.notebooks import NOTEBOOKS, TEMPLATES, check_declared, declared_parameters
from funnel_models.reports.runner import plan_run

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
PARAMETERS = ROOT / "parameters"
FUNNEL = str(Path(sys.executable).with_name("funnel"))
DEMO_FILES = ["default.yaml", "region_north.yaml", "campaign_partner.yaml"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_file_says_what_the_demo_needs():
    p, nb = load_parameter_file(PARAMETERS / "default.yaml")
    assert nb is None and p.source == "demo" and p.factors == ["region", "channel"]
    assert [(c.stage, c.month) for c in p.model_settings.change_points] == [("DEMO", "2025-01")]
    assert p.monthly_report.target_wins == 240 and p.monthly_report.window_months == 6
    assert p.monthly_report.benchmarks["NEGO"] == 0.65
    # nothing of the demo leaks into a file that does not ask for it
    bare = ParameterFile(source="x.csv")
    assert bare.factors == [] and bare.model_settings.change_points == [] and bare.monthly_report.benchmarks == {}
    assert bare.monthly_report.target_wins is None


def test_extends_merges_sections_key_by_key():
    p, _ = load_parameter_file(PARAMETERS / "region_north.yaml")
    assert p.segment_filters == {"region": "North"} and p.factors == ["channel"]
    assert p.monthly_report.target_wins == 125 and p.monthly_report.benchmarks["NEGO"] == 0.65   # inherited
    assert p.lead_planning.plan_by == "channel" and p.process_change.change_stage == "DEMO"


@pytest.mark.parametrize("name", DEMO_FILES)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_demo_file_plans_for_every_notebook(name, notebook, monkeypatch):
    monkeypatch.chdir(ROOT)
    plan = plan_run(notebook, PARAMETERS / name, None, "2026-01-31")
    assert plan.notebook == notebook and plan.notebook_path.name == f"{notebook}.ipynb"
    assert set(plan.values) == set(notebook_parameters(plan.params, notebook))


def test_the_cold_leads_generator_is_a_source_with_its_own_factors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cold.yaml").write_text("source: coldleads\nfactors: [source]\n")
    plan = plan_run(None, tmp_path / "cold.yaml", None, "2026-01-31")
    assert plan.params.source == "coldleads"
    (tmp_path / "bad.yaml").write_text("source: coldleads\nfactors: [region]\n")   # a demo column, not its own
    with pytest.raises(ParameterError, match="region"):
        plan_run(None, tmp_path / "bad.yaml", None, "2026-01-31")


def test_olist_file_without_the_data_fails_up_front_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNEL_OLIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ParameterError) as ei:
        plan_run(None, PARAMETERS / "olist.yaml", None, "2026-01-31")
    msg = str(ei.value)
    assert "olist.yaml" in msg and "FUNNEL_OLIST_DIR" in msg and "Fix:" in msg


@pytest.mark.parametrize("text, fragment", [
    ("source: demo\nquick: true\n", "use model: conjugate"),
    ("source: demo\ntarget_wins: 10\n", "monthly_report: {target_wins"),
    ("source: demo\nmonthly_report: {target_wnis: 3}\n", "did you mean 'target_wins'"),
    ("source: demo\nmonthly_report: {confidence: 1.5}\n", "confidence"),
    ("source: demo\nmonthly_report: {target_wins: .inf}\n", "finite"),
    ("source: demo\nmonthly_report: {horizon: 100000}\n", "horizon"),
    ("source: demo\nsampler: {draws: 20000, chains: 4}\n", "limit"),
    ("source: demo\nmonthly_report: {benchmarks: {DEMO: 2}}\n", "benchmark for 'DEMO'"),
    ("- a list\n", "must be a mapping"),
    ("source: [unclosed\n", "not valid YAML"),
    ("spec: x.yaml\n", "source: required"),
])
def test_bad_files_are_parameter_errors(tmp_path, text, fragment):
    f = write(tmp_path / "p.yaml", text)
    with pytest.raises(ParameterError) as ei:
        load_parameter_file(f)
    assert fragment in str(ei.value) and str(f) in str(ei.value)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_declares_exactly_what_the_runner_passes_with_the_demo_defaults(notebook):
    """The parameters cell holds literal values equal to parameters/default.yaml."""
    declared = declared_parameters(NB_DIR / f"{notebook}.ipynb")
    demo, _ = load_parameter_file(PARAMETERS / "default.yaml")
    expected = notebook_parameters(demo, notebook)
    assert set(declared) == set(expected) | {"summary_path"}
    values = {k: ast.literal_eval(v["default"]) for k, v in declared.items() if k != "summary_path"}
    assert from_notebook(notebook, values) == from_notebook(notebook, expected)


def test_check_declared_rejects_keys_the_notebook_does_not_declare(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("source = 'demo'\nfactors = []\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "mini.ipynb"
    nbformat.write(nb, str(path))
    check_declared(["source", "factors"], path)
    with pytest.raises(ParameterError) as ei:
        check_declared(["source", "factrs"], path, where="x.yaml")
    assert "'factrs'" in str(ei.value) and "x.yaml" in str(ei.value) and "did you mean 'factors'" in str(ei.value)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_jupytext_pair_in_sync_and_outputs_stripped(name):
    py = jupytext.read(NB_DIR / f"{name}.py")
    ipynb = nbformat.read(str(NB_DIR / f"{name}.ipynb"), as_version=4)
    assert [(c.cell_type, c.source.strip()) for c in py.cells] == [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    tags = [c.metadata.get("tags", []) for c in ipynb.cells]
    assert sum("parameters" in t for t in tags) == 1
    for c in ipynb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
        if "parameters" not in c.metadata.get("tags", []) and c.cell_type == "code":
            assert len(c.source.splitlines()) <= 8, "notebooks stay thin: logic lives in funnel_models.reports"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_holds_literals_only(name):
    nb = nbformat.read(str(NB_DIR / f"{name}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign)
        ast.literal_eval(node.value)


def test_packaged_templates_equal_the_repository_copies():
    files = [*NB_DIR.glob("*.ipynb"), *PARAMETERS.glob("*.yaml")]
    assert files
    for f in files:
        assert filecmp.cmp(f, TEMPLATES / f.name, shallow=False), f"{f.name}: copy it to {TEMPLATES}"


def test_cli_bad_parameter_file_exits_2_and_writes_nothing(tmp_path):
    bad = write(tmp_path / "bad.yaml", f"extends: {PARAMETERS / 'default.yaml'}\nmonthly_report: {{confidance: 0.9}}\n")
    out = tmp_path / "reports"
    r = subprocess.run([FUNNEL, "report", str(bad), "--output-dir", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "confidance" in r.stderr and str(bad) in r.stderr and "'confidence'" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = subprocess.run([FUNNEL, "report", "--date", "31/01/2026", "--output-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr and not out.exists()


def test_cli_batch_with_a_bad_file_runs_nothing_and_exits_2(tmp_path):
    good = write(tmp_path / "good.yaml", f"extends: {PARAMETERS / 'default.yaml'}\nmodel: conjugate\n")
    bad = write(tmp_path / "bad.yaml", "source: demo\nmonthly_report: {horizn: 3}\n")
    out = tmp_path / "reports"
    r = subprocess.run([FUNNEL, "report", str(good), str(bad), "--output-dir", str(out), "--quiet"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "BAD INPUT" in r.stderr and "horizn" in r.stderr and "nothing was run" in r.stderr
    assert not out.exists()


def test_the_readme_batch_example_fails_up_front_when_olist_data_is_absent(tmp_path):
    """`funnel report parameters/*.yaml` in a fresh clone: exit 2 naming olist.yaml and the fix."""
    out = tmp_path / "reports"
    env = {"FUNNEL_OLIST_DIR": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([FUNNEL, "report", *sorted(str(p) for p in PARAMETERS.glob("*.yaml")), "--output-dir",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert "olist.yaml" in r.stderr and "FUNNEL_OLIST_DIR" in r.stderr and not out.exists()
