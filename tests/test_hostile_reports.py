"""A corpus of hostile inputs for the report, fit and backtest commands: parameter files,
stores, caches and signals.

Every bad-input case must give exit status 2 before anything runs (no fit, no kernel),
print one ``error:`` message naming the file, the problem and the fix, never a
traceback, and leave the store, the fit cache and the published reports byte-identical.
A busy store gives 3. Signals and broken caches are in the slower tests at the end.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from funnel_models.cli import main

ROOT = Path(__file__).resolve().parents[1]
FUNNEL = str(Path(sys.executable).with_name("funnel"))
SPEC = {"stages": [{"code": "NEW", "name": "New"}, {"code": "QUAL", "name": "Qualified"}],
        "won": ["WON"], "lost": ["LOST"], "attributes": ["region"]}
HISTORY = "lead_id,stage,entered_at,region\n" + "".join(
    f"L{i},NEW,2024-0{1 + i % 6}-0{1 + i % 9},{'EU' if i % 2 else 'US'}\n" for i in range(40))
COMMANDS = {"report": ["report"], "fit": ["fit"], "backtest": ["backtest", "--no-progress"]}


@dataclass
class Env:
    dir: Path
    csv: Path
    spec: Path
    out: Path
    cache: Path

    def params(self, text: str | bytes, name: str = "p.yaml") -> Path:
        p = self.dir / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return p

    def good(self, **extra: object) -> str:
        return yaml.safe_dump({"source": str(self.csv), "spec": str(self.spec), **extra}, sort_keys=False)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    csv, spec = tmp_path / "h.csv", tmp_path / "spec.yaml"
    csv.write_text(HISTORY)
    spec.write_text(yaml.safe_dump(SPEC))
    out, cache = tmp_path / "reports", tmp_path / "cache"
    (out / "monthly_report-p").mkdir(parents=True)
    (out / "monthly_report-p" / "latest").symlink_to("2026-01-01")
    cache.mkdir()
    (cache / "fit-0123.nc").write_bytes(b"a cached fit")
    monkeypatch.setenv("FUNNEL_CACHE_DIR", str(cache))
    monkeypatch.setenv("FUNNEL_OLIST_DIR", str(tmp_path / "no-olist"))
    return Env(tmp_path, csv, spec, out, cache)


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else
                                          hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


@dataclass
class Case:
    text: Callable[[Env], str | bytes]
    expect: list[str]                 # the problem ...
    fix: str = "Fix"                  # ... and the fix
    commands: tuple[str, ...] = ("report", "fit", "backtest")
    extra: tuple[str, ...] = ()


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefghijkl", "bcdefghijklm"))

CASES = {
    "binary file": Case(lambda e: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ["not UTF-8"]),
    "latin-1 file": Case(lambda e: "source: d\xe9mo\n".encode("latin-1"), ["not UTF-8"]),
    "NUL bytes": Case(lambda e: b"source: demo\n\x00\x00", ["NUL"]),
    "invalid YAML": Case(lambda e: "source: [demo\n", ["not valid YAML"]),
    "alias bomb": Case(lambda e: ALIAS_BOMB, ["aliases"]),
    "duplicate key": Case(lambda e: "source: demo\nsource: demo\n", ["duplicate key 'source'"]),
    "a list": Case(lambda e: "- source: demo\n", ["must be a mapping"], fix="got list"),
    "empty file": Case(lambda e: "", ["source: required"], fix="source: history.csv"),
    "typo at the top": Case(lambda e: e.good(factor=["region"]), ["unknown parameter 'factor'"], fix="did you mean 'factors'"),
    "typo in a section": Case(lambda e: e.good(monthly_report={"horizn": 3}), ["'horizn'"], fix="did you mean 'horizon'"),
    "old flat key": Case(lambda e: e.good(quick=True), ["'quick' is no longer a top-level key"], fix="model: conjugate"),
    "infinite target": Case(lambda e: "source: demo\nmonthly_report: {target_wins: .inf}\n", ["target_wins"], fix="finite"),
    "huge horizon": Case(lambda e: e.good(monthly_report={"horizon": 100000}), ["horizon"], fix="less than or equal to 60"),
    "huge backtest": Case(lambda e: e.good(backtest={"n_windows": 100000}), ["n_windows"], fix="less than or equal to 120"),
    "huge sampler": Case(lambda e: e.good(sampler={"draws": 20000, "chains": 16}), ["draws x chains"], fix="lower draws"),
    "negative new leads": Case(lambda e: e.good(new_leads=-5), ["new_leads"], fix="greater than or equal to 0"),
    "missing source": Case(lambda e: "source: nowhere.csv\nspec: spec.yaml\n", ["'nowhere.csv' does not exist"]),
    "no spec": Case(lambda e: yaml.safe_dump({"source": str(e.csv)}), ["needs a funnel spec"], fix="spec: funnel.yaml"),
    "missing spec file": Case(lambda e: yaml.safe_dump({"source": str(e.csv), "spec": "nope.yaml"}),
                              ["spec 'nope.yaml' does not exist"]),
    "olist absent": Case(lambda e: "source: olist\n", ["Olist", "not in"], fix="FUNNEL_OLIST_DIR"),
    "benchmark stage": Case(lambda e: e.good(monthly_report={"benchmarks": {"DEMO": 0.5}}),
                            ["monthly_report.benchmarks", "'DEMO'"], fix="valid: ['NEW', 'QUAL']"),
    "change point stage": Case(lambda e: e.good(model_settings={"change_points": [{"stage": "NEGO", "month": "2024-02"}]}),
                               ["model_settings.change_points", "'NEGO'"], fix="valid"),
    "filter column": Case(lambda e: e.good(segment_filters={"regoin": "EU"}), ["segment_filters", "'regoin'"],
                          fix="did you mean 'region'"),
    "factor column": Case(lambda e: e.good(factors=["channel"]), ["factors", "'channel'"], fix="valid: ['region']"),
    "plan_by column": Case(lambda e: e.good(lead_planning={"plan_by": "channel"}), ["lead_planning.plan_by"], fix="valid"),
    "bad date": Case(lambda e: e.good(cutoff="last tuesday"), ["cutoff", "not a date"], fix="YYYY-MM-DD"),
    "counts with a lead model": Case(lambda e: e.good(model="lag"), ["model: lag is for aggregate counts"],
                                     fix="use model: auto"),
    "extends cycle": Case(lambda e: "extends: p.yaml\nsource: demo\n", ["cycle"], fix="extends"),
    "extends missing": Case(lambda e: "extends: base.yaml\nsource: demo\n", ["base.yaml", "does not exist"], fix="extends"),
    "process change without its stage": Case(lambda e: e.good(), ["process_change.change_stage"], fix="Fix",
                                             commands=("report",), extra=("--notebook", "process_change")),
    "lead planning by a non-factor": Case(lambda e: e.good(lead_planning={"plan_by": "region"}), ["must also be a model factor"],
                                          commands=("report",), extra=("--notebook", "lead_planning")),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_parameter_file(name: str, command: str, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    if command not in case.commands:
        pytest.skip(f"{name} is specific to {case.commands}")
    p = env.params(case.text(env))
    before = (_tree(env.out), _tree(env.cache), env.csv.read_bytes())
    argv = [*COMMANDS[command], str(p), *case.extra]
    if command == "report":
        argv += ["--output-dir", str(env.out)]
    capsys.readouterr()
    t0 = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (name, command, err)
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in case.expect:
        assert fragment in err, (name, command, err)
    assert case.fix in err, (name, command, err)
    assert str(p) in err or name in ("olist absent",) and "olist" in err
    assert (_tree(env.out), _tree(env.cache), env.csv.read_bytes()) == before
    assert time.perf_counter() - t0 < 60        # refused before any fit or kernel (generous on a loaded machine)


def test_a_folder_as_parameter_file(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    for command in sorted(COMMANDS):
        assert main([*COMMANDS[command], str(env.dir)]) == 2
        err = capsys.readouterr().err
        assert "is a folder" in err and "Fix" in err and "Traceback" not in err


_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_busy_store_exits_3_for_every_command(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    store = env.dir / "funnel.duckdb"
    assert main(["ingest", str(env.csv), "--spec", str(env.spec), "--store", str(store)]) == 0
    p = env.params(yaml.safe_dump({"source": str(store), "model": "conjugate"}))
    before = store.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        for command in sorted(COMMANDS):
            argv = [*COMMANDS[command], str(p)] + (["--output-dir", str(env.out)] if command == "report" else [])
            assert main(argv) == 3, command
            err = capsys.readouterr().err
            assert "in use by another process" in err and "--wait SECONDS" in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()
    assert store.read_bytes() == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_report_leaves_the_last_good_report(env: Env, sig: int) -> None:
    """Interrupted: exit 130 with one line, no traceback or kernel noise, no temporary folder,
    latest untouched."""
    p = env.params(yaml.safe_dump({"extends": str(ROOT / "parameters" / "default.yaml"), "model": "conjugate"}))
    root = env.out / "monthly_report-p"
    before = _tree(root)
    proc = subprocess.Popen([FUNNEL, "report", str(p), "--output-dir", str(env.out), "--date", "2026-02-28", "--quiet"],
                            cwd=env.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 90
        while not list(root.glob(".tmp-2026-02-28-*")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert list(root.glob(".tmp-2026-02-28-*")), "the run never started"
        time.sleep(2)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err and "KeyboardInterrupt" not in err
    after = {k: v for k, v in _tree(root).items() if k != ".lock"}
    assert after == {k: v for k, v in before.items() if k != ".lock"}


@pytest.mark.slow
def test_an_unreadable_fit_cache_entry_is_refitted_with_a_note(tmp_path: Path) -> None:
    """`funnel fit`, then the cache file is garbage: the next fit and the scheduled report warn
    (naming the file and the fix), refit, and exit 0; the report shows no machine path."""
    from funnel_models.datasets.demo import DEMO_SPEC, demo_data
    d = demo_data(seed=2, months=10, leads_per_month=80)
    d.history.to_csv(tmp_path / "h.csv", index=False)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(DEMO_SPEC))
    (tmp_path / "p.yaml").write_text("source: h.csv\nspec: spec.yaml\nmodel: markov\n"
                                     "model_settings: {time_in_stage: 'off', month_effects: 'off'}\n")
    envv = dict(os.environ, FUNNEL_CACHE_DIR=str(tmp_path / "cache"))
    first = subprocess.run([FUNNEL, "fit", "p.yaml"], cwd=tmp_path, env=envv, capture_output=True, text=True, timeout=900)
    assert first.returncode in (0, 1), first.stderr
    (entry,) = list((tmp_path / "cache").glob("fit-*.nc"))
    entry.write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    r = subprocess.run([FUNNEL, "fit", "p.yaml"], cwd=tmp_path, env=envv, capture_output=True, text=True, timeout=900)
    assert r.returncode == first.returncode, r.stderr
    assert "Traceback" not in r.stderr and entry.name in r.stdout and "Delete the file" in r.stdout
    entry.write_bytes(b"garbage again")
    r = subprocess.run([FUNNEL, "report", "p.yaml", "--output-dir", "out", "--date", "2026-01-31", "--quiet"],
                       cwd=tmp_path, env=envv, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    html = next((tmp_path / "out").glob("*/2026-01-31/*.html")).read_text()
    assert entry.name in html and "Delete the file" in html and str(tmp_path) not in html
