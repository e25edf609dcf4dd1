"""Report parameters: schema, YAML layering, unknown-key errors, notebook declarations, pairing."""
from __future__ import annotations

import ast
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from funnel_models.errors import ParameterError
from funnel_models.reports.params import (SCHEMAS, check_declared, declared_parameters, load_parameters,
                                          validate_parameters)
from funnel_models.reports.runner import TEMPLATES, _prepare_run

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PARAMETERS = ROOT / "parameters"
FUNNEL = str(Path(sys.executable).with_name("funnel"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_default_parameters_are_the_schema_defaults():
    name, p, explicit = load_parameters(PARAMETERS / "default.yaml")
    assert name == "monthly_report"
    assert p.source == "demo" and p.quick is False
    assert p.model_dump() == SCHEMAS["monthly_report"]().model_dump()


def test_extends_layers_a_file_on_its_base():
    name, p, explicit = load_parameters(PARAMETERS / "region_north.yaml")
    assert p.segment_filters == {"region": "North"}
    assert p.factors == ["channel"]
    # inherited from default.yaml
    assert p.change_points == [{"stage": "DEMO", "month": "2025-01", "name": "sales training"}]
    assert p.benchmarks["NEGO"] == 0.65
    assert "benchmarks" in explicit and "segment_filters" in explicit


def test_typo_names_key_file_and_closest_key(tmp_path):
    write(tmp_path / "base.yaml", "source: demo\ntarget_wins: 10\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntarget_wnis: 12\n")
    with pytest.raises(ParameterError) as ei:
        load_parameters(child)
    msg = str(ei.value)
    assert "'target_wnis'" in msg and str(child) in msg and "did you mean 'target_wins'" in msg


def test_typo_in_the_base_file_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", "sourc: demo\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntarget_wins: 12\n")
    with pytest.raises(ParameterError) as ei:
        load_parameters(child)
    assert str(base) in str(ei.value) and "'source'" in str(ei.value)


def test_key_valid_for_another_notebook_is_rejected(tmp_path):
    f = write(tmp_path / "p.yaml", "notebook: process_change\ntarget_wins: 5\n")
    with pytest.raises(ParameterError, match="unknown parameter 'target_wins' for notebook process_change"):
        load_parameters(f)


@pytest.mark.parametrize("text, fragment", [
    ("confidence: 1.5\n", "confidence"),
    ("window_months: three\n", "window_months"),
    ("benchmarks: {DEMO: 2}\n", "benchmark for 'DEMO'"),
    ("change_points: [{stage: DEMO}]\n", "change_points"),
    ("- a list\n", "must be a mapping"),
    ("source: [unclosed\n", "not valid YAML"),
])
def test_bad_values_are_parameter_errors(tmp_path, text, fragment):
    f = write(tmp_path / "p.yaml", text)
    with pytest.raises(ParameterError, match=None) as ei:
        load_parameters(f)
    assert fragment in str(ei.value)


def test_extends_cycle_and_missing_file(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ParameterError, match="cycle"):
        load_parameters(tmp_path / "a.yaml")
    with pytest.raises(ParameterError, match="not found"):
        load_parameters(tmp_path / "nope.yaml")


@pytest.mark.parametrize("notebook", sorted(SCHEMAS))
def test_schema_matches_the_notebook_parameters_cell(notebook):
    """Every schema field is declared in the notebook with the same literal default."""
    declared = declared_parameters(NOTEBOOKS / f"{notebook}.ipynb")
    schema = SCHEMAS[notebook]
    assert set(declared) == set(schema.model_fields)
    defaults = schema().model_dump()
    for name, info in declared.items():
        assert ast.literal_eval(info["default"]) == defaults[name], name


def test_check_declared_rejects_keys_the_notebook_does_not_declare(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("source = 'demo'\nquick = False\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "mini.ipynb"
    nbformat.write(nb, str(path))
    check_declared(["source", "quick"], path)
    with pytest.raises(ParameterError) as ei:
        check_declared(["source", "quik"], path, where="x.yaml")
    assert "'quik'" in str(ei.value) and "x.yaml" in str(ei.value) and "did you mean 'quick'" in str(ei.value)


@pytest.mark.parametrize("path", sorted(PARAMETERS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_parameter_file_validates_against_its_notebook(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    name, nb, ppath, explicit, date = _prepare_run(None, path, None, "2026-01-31")
    assert nb.name == f"{name}.ipynb"


@pytest.mark.parametrize("name", ["monthly_report", "lead_planning", "process_change"])
def test_jupytext_pair_in_sync_and_outputs_stripped(name):
    py = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
    assert [(c.cell_type, c.source.strip()) for c in py.cells] == \
        [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    tags = [c.metadata.get("tags", []) for c in ipynb.cells]
    assert sum("parameters" in t for t in tags) == 1
    for c in ipynb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None


def test_parameters_cell_holds_literals_only():
    for name in ("monthly_report", "lead_planning", "process_change"):
        nb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        for node in ast.parse(cell.source).body:
            assert isinstance(node, ast.Assign)
            ast.literal_eval(node.value)


def test_packaged_templates_equal_the_repository_copies():
    files = [*NOTEBOOKS.glob("*.ipynb"), *PARAMETERS.glob("*.yaml")]
    assert files
    for f in files:
        assert filecmp.cmp(f, TEMPLATES / f.name, shallow=False), f"{f.name}: copy it to {TEMPLATES}"


def test_cli_bad_parameter_file_exits_2_and_writes_nothing(tmp_path):
    bad = write(tmp_path / "bad.yaml", "extends: " + str(PARAMETERS / "default.yaml") + "\nconfidance: 0.9\n")
    out = tmp_path / "reports"
    r = subprocess.run([FUNNEL, "report", str(bad), "--output-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "confidance" in r.stderr and str(bad) in r.stderr and "'confidence'" in r.stderr
    assert not out.exists()
    r = subprocess.run([FUNNEL, "report", "--date", "31/01/2026", "--output-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr
    assert not out.exists()


def test_cli_batch_with_a_bad_file_runs_nothing_and_exits_2(tmp_path):
    good = write(tmp_path / "good.yaml", f"extends: {PARAMETERS / 'default.yaml'}\nquick: true\n")
    bad = write(tmp_path / "bad.yaml", "notebook: monthly_report\nhorizn: 3\n")
    out = tmp_path / "reports"
    r = subprocess.run([FUNNEL, "report", str(good), str(bad), "--output-dir", str(out), "--quiet"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "BAD INPUT" in r.stderr and "horizn" in r.stderr
    assert not (out / "monthly_report-good").exists() or not any((out / "monthly_report-good").iterdir())


def test_validate_parameters_accepts_a_plain_mapping():
    p = validate_parameters({"quick": True, "horizon": 3}, "monthly_report")
    assert p.quick and p.horizon == 3 and json.dumps(p.model_dump())
