"""Run report notebooks unattended with papermill and publish them atomically.

:func:`run_report` executes a notebook with a parameter file and writes
``<output_dir>/<name>/<YYYY-MM-DD>/`` containing the executed notebook, a self-contained
HTML report without code (``<notebook>.html``) and ``summary.json``. ``<name>`` is the
notebook name, or ``<notebook>-<parameter file stem>`` for a parameter file other than
``default.yaml``.

Where templates come from
    A notebook or parameter file given as a path is used as is. A bare name
    (``monthly_report``, ``default.yaml``) is looked up first in ``./notebooks`` /
    ``./parameters`` of the current directory (the repository root), then in the copies
    shipped inside the package (``funnel_models/templates/``), so ``funnel report``
    works after a non-editable ``pip install .`` from anywhere. The shipped copies are
    kept identical to the repository's by a test.

How summary.json is made
    The notebook itself writes it: its last cell calls
    :func:`funnel_models.reports.analysis.write_summary`, and the runner passes the
    path as the ``summary_path`` parameter (into the temporary folder). The runner then
    adds a ``run`` block (parameter file, notebook, date, seconds).

Failure contract
    Everything is written into a unique hidden temporary folder next to the target
    (``.tmp-<date>-<pid>-<random>``) and renamed into place only when the notebook ran,
    the HTML was exported and the summary exists. Then ``latest`` (a relative symlink
    to the date folder) is replaced atomically. When a cell raises, the executed
    notebook with its error is kept in ``<name>/<date>.failed/`` (with ``error.txt``),
    :class:`~funnel_models.errors.ReportError` names the cell and the error, and the
    last good report and ``latest`` are untouched. An interrupted run (Ctrl-C,
    SIGTERM) removes its temporary folder; folders left by a killed process
    (SIGKILL) are removed by the next run into the same report folder.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ParameterError, ReportError
from .params import check_declared, load_parameters

__all__ = ["ReportResult", "run_report", "batch", "resolve_notebook", "resolve_parameters",
           "report_name", "kernel_name", "export_html", "plain_summary", "TEMPLATES", "NOTEBOOKS"]

#: Templates shipped inside the package (copies of notebooks/*.ipynb and parameters/*.yaml).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: Notebooks known by name.
NOTEBOOKS = ("monthly_report", "lead_planning", "process_change")
_DEFAULT_PARAMS = "default.yaml"


@dataclass
class ReportResult:
    """Outcome of one report run (see :func:`run_report` and :func:`batch`)."""

    notebook: str
    name: str
    parameters: Path | None
    ok: bool = False
    output: Path | None = None
    failed: Path | None = None
    summary: dict[str, Any] | None = None
    error: str = ""
    bad_input: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- lookup
def resolve_notebook(notebook: str | os.PathLike[str]) -> Path:
    """A notebook path from a path or a bare name (``./notebooks`` first, then the package)."""
    s = str(notebook)
    p = Path(s)
    if p.suffix == ".ipynb" and p.is_file():
        return p
    if p.suffix == ".py" and p.with_suffix(".ipynb").is_file():
        return p.with_suffix(".ipynb")
    name = p.stem if p.suffix in (".ipynb", ".py") else p.name
    for base in (Path.cwd() / "notebooks", TEMPLATES):
        cand = base / f"{name}.ipynb"
        if cand.is_file():
            return cand
    raise ParameterError(f"notebook {s!r} not found: looked for ./notebooks/{name}.ipynb and the package "
                         f"templates; known notebooks: {list(NOTEBOOKS)}")


def resolve_parameters(path: str | os.PathLike[str]) -> Path:
    """A parameter file from a path or a bare name (``./parameters`` first, then the package)."""
    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) == 1:
        name = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
        for base in (Path.cwd() / "parameters", TEMPLATES):
            if (base / name).is_file():
                return base / name
    raise ParameterError(f"{path}: parameter file not found")


def report_name(notebook: str, parameters: Path | None) -> str:
    """Folder name of a report: the notebook, plus ``-<stem>`` unless the file is default.yaml."""
    if parameters is None or parameters.name == _DEFAULT_PARAMS:
        return notebook
    return f"{notebook}-{parameters.stem}"


def kernel_name() -> str:
    """A kernel that runs this interpreter, registering one on first use if needed.

    ``python3`` is used when its kernelspec launches ``python`` (which jupyter_client
    maps to ``sys.executable``) or this very interpreter. Otherwise (e.g. a user-wide
    ``python3`` spec pointing at another Python) a spec ``funnel-<hash>`` with
    ``sys.executable`` is written to the user's Jupyter data folder and used.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec("python3")
        argv0 = spec.argv[0] if spec.argv else ""
        mapped = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}
        if argv0 in mapped or (argv0 and Path(argv0).resolve() == Path(sys.executable).resolve()):
            return "python3"
    except NoSuchKernel:
        pass
    from jupyter_core.paths import jupyter_data_dir
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    name = f"funnel-{tag}"
    d = Path(jupyter_data_dir()) / "kernels" / name
    if not (d / "kernel.json").is_file():
        d.mkdir(parents=True, exist_ok=True)
        (d / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"funnel_models ({sys.executable})", "language": "python"}, indent=1))
    return name


# ---------------------------------------------------------------------------- html
def export_html(notebook: Path, target: Path, title: str | None = None) -> Path:
    """Export an executed notebook to self-contained HTML without code cells.

    Uses nbconvert's ``HTMLExporter`` (lab template) with ``exclude_input=True``; images
    are already embedded as data URIs. External scripts (MathJax, require.js) are left
    out so the file opens offline.
    """
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(notebook), as_version=4)
    exp = HTMLExporter(template_name="lab")
    exp.exclude_input = True
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    # papermill's injected parameters cell (hidden with the inputs anyway) and error
    # tracebacks never reach a successful report
    body, _ = exp.from_notebook_node(nb, resources={"metadata": {"name": title or notebook.stem}})
    body = _strip_external_scripts(body)
    target.write_text(body, encoding="utf-8")
    return target


def _strip_external_scripts(body: str) -> str:
    import re
    return re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)


# ---------------------------------------------------------------------------- folders
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(folder: Path) -> None:
    """Remove temporary folders left by killed runs (their process is gone)."""
    if not folder.is_dir():
        return
    for d in folder.glob(".tmp-*"):
        try:
            pid = int(d.name.split("-")[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing an existing ``dst`` (old one removed after)."""
    old = None
    if dst.exists():
        old = dst.with_name(f".old-{dst.name}-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except OSError:
        if old is not None and not dst.exists():
            os.replace(old, dst)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _point_latest(folder: Path, date: str) -> None:
    """Atomically point ``folder/latest`` at ``date`` (symlink; a text file where symlinks fail)."""
    link = folder / "latest"
    tmp = folder / f".latest-{uuid.uuid4().hex[:8]}"
    try:
        os.symlink(date, tmp, target_is_directory=True)
    except (OSError, NotImplementedError):
        tmp.write_text(date + "\n", encoding="utf-8")
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(tmp, link)


# ---------------------------------------------------------------------------- run
def _check_source(params: Any, where: str) -> None:
    src = str(getattr(params, "source", "demo"))
    if src in ("demo", "olist"):
        return
    path = src.split("::")[0]
    if not Path(path).exists():
        raise ParameterError(f"{where}: source {src!r} does not exist (relative paths are read from "
                             f"{Path.cwd()}); use 'demo', 'olist' or a CSV/Parquet/DuckDB path")
    if getattr(params, "spec", None) is None and not path.endswith(".duckdb"):
        raise ParameterError(f"{where}: source {src!r} needs a funnel spec; add spec: funnel.yaml")


def _cell_error(exc: BaseException, nb_path: Path) -> str:
    """Which cell failed and why, from a papermill error (or the saved notebook)."""
    idx = getattr(exc, "cell_index", None)
    src = getattr(exc, "source", "") or ""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    if idx is None:
        return f"{ename}: {evalue}"
    first = next((ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")),
                 src.strip().splitlines()[0] if src.strip() else "")
    return f"cell {idx} (`{first[:100]}`): {ename}: {evalue}"


def run_report(
    notebook: str | os.PathLike[str] = "monthly_report",
    parameters: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] = "reports",
    *,
    date: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    kernel: str | None = None,
    progress: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    timeout: int | None = None,
) -> Path:
    """Execute a report notebook with a parameter file and publish it.

    Parameters
    ----------
    notebook : str or path
        Name (``monthly_report``, ``lead_planning``, ``process_change``) or path of the
        notebook. ``None``-like empty string: the parameter file's ``notebook`` key.
    parameters : path, optional
        YAML parameter file (name or path). Default: ``default.yaml`` for the monthly
        report, the notebook's own defaults for the others.
    output_dir : path
        Root of the report folders.
    date : str, optional
        ``YYYY-MM-DD`` of the report folder (default today).
    overrides : mapping, optional
        Parameter values applied on top of the file (validated the same way).
    kernel : str, optional
        Kernel name (default :func:`kernel_name`).
    progress : bool
        Show papermill's cell progress bar.
    cwd : path, optional
        Working directory of the kernel (default the current directory, so relative
        data paths in parameter files mean the same as on the command line).
    timeout : int, optional
        Per-cell timeout in seconds.

    Returns
    -------
    Path
        The published report folder ``<output_dir>/<name>/<date>``.

    Raises
    ------
    ParameterError
        Bad parameter file or notebook (before anything is written).
    ReportError
        The notebook failed; ``exc.result`` is the :class:`ReportResult`.
    """
    res = _run(notebook, parameters, output_dir, date=date, overrides=overrides, kernel=kernel,
               progress=progress, cwd=cwd, timeout=timeout)
    assert res.output is not None
    return res.output


def _prepare_run(notebook: Any, parameters: Any, overrides: Mapping[str, Any] | None,
                 date: str | None) -> tuple[str, Path, Path | None, dict[str, Any], str]:
    """Validate everything (ParameterError) and return (name, nb_path, params_path, values, date)."""
    if date is None:
        date = _dt.date.today().isoformat()
    else:
        try:
            date = _dt.date.fromisoformat(str(date)).isoformat()
        except ValueError:
            raise ParameterError(f"--date must look like YYYY-MM-DD, got {date!r}") from None
    ppath = resolve_parameters(parameters) if parameters is not None else None
    nb_name = str(notebook) if notebook else None
    if ppath is None:
        nb_guess = Path(nb_name).stem if nb_name else "monthly_report"
        if nb_guess == "monthly_report":
            ppath = resolve_parameters(_DEFAULT_PARAMS)
    name, params, explicit = load_parameters(ppath, Path(nb_name).stem if nb_name else None, overrides)
    nb_path = resolve_notebook(nb_name or name)
    where = str(ppath) if ppath else "parameters"
    check_declared(list(explicit) + ["summary_path"], nb_path, where=where)
    _check_source(params, where)
    return name, nb_path, ppath, explicit, date


def _run(notebook: Any, parameters: Any, output_dir: Any, *, date: str | None = None,
         overrides: Mapping[str, Any] | None = None, kernel: str | None = None, progress: bool = False,
         cwd: Any = None, timeout: int | None = None) -> ReportResult:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    name, nb_path, ppath, explicit, date = _prepare_run(notebook, parameters, overrides, date)
    rname = report_name(name, ppath)
    res = ReportResult(notebook=name, name=rname, parameters=ppath)
    folder = Path(output_dir) / rname
    folder.mkdir(parents=True, exist_ok=True)
    _clean_stale(folder)
    tmp = folder / f".tmp-{date}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    out_nb = tmp / f"{name}.ipynb"
    summary_path = tmp / "summary.json"
    values = dict(explicit)
    values["summary_path"] = str(summary_path.resolve())
    t0 = time.perf_counter()
    try:
        try:
            pm.execute_notebook(str(nb_path), str(out_nb), parameters=values,
                                kernel_name=kernel or kernel_name(), progress_bar=progress,
                                log_output=False, cwd=str(cwd or Path.cwd()), execution_timeout=timeout,
                                report_mode=False,
                                # the kernel's own TCP notice would end up in cron mails
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
            if not summary_path.is_file():
                raise ReportError(f"{nb_path.name} ran but did not write summary.json; its last cell must "
                                  "call analysis.write_summary(ctx)")
        except (PapermillExecutionError, ReportError, RuntimeError, OSError, TimeoutError) as exc:
            res.seconds = time.perf_counter() - t0
            why = _cell_error(exc, out_nb)
            failed = folder / f"{date}.failed"
            (tmp / "error.txt").write_text(f"{rname} {date}: {why}\n", encoding="utf-8")
            if summary_path.exists():
                summary_path.unlink()
            _replace_dir(tmp, failed)
            res.failed = failed
            latest = folder / "latest"
            last = os.readlink(latest) if latest.is_symlink() else "none yet"
            res.error = (f"report {rname} failed in {why}. The failed notebook is kept in "
                         f"{failed / out_nb.name}; the last good report ({folder / 'latest'} -> {last}) "
                         "is untouched.")
            err = ReportError(res.error)
            err.result = res  # type: ignore[attr-defined]
            raise err from None
        export_html(out_nb, tmp / f"{name}.html", title=name)
        res.seconds = time.perf_counter() - t0
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["run"] = {"notebook": name, "report": rname, "parameters_file": str(ppath) if ppath else None,
                          "date": date, "seconds": round(res.seconds, 1)}
        summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        final = folder / date
        _replace_dir(tmp, final)
        _point_latest(folder, date)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    res.ok, res.output, res.summary = True, final, summary
    return res


def batch(
    files: Sequence[str | os.PathLike[str]],
    *,
    notebook: str | None = None,
    output_dir: str | os.PathLike[str] = "reports",
    date: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[ReportResult]:
    """Run several parameter files one after the other with a tqdm progress bar.

    Every file is validated first; invalid files are reported (``bad_input=True``) and
    not run. A failing report does not stop the batch. Returns one result per file.
    """
    from tqdm.auto import tqdm
    results: list[ReportResult] = []
    runnable = []
    for f in files:
        try:
            _prepare_run(notebook, f, overrides, date)
            runnable.append(f)
        except ParameterError as exc:
            results.append(ReportResult(notebook=notebook or "?", name=Path(f).stem, parameters=Path(f),
                                        error=str(exc), bad_input=True))
    bar = tqdm(runnable, desc="reports", unit="report", disable=not progress, file=sys.stderr)
    for f in bar:
        bar.set_postfix_str(Path(f).name)
        try:
            results.append(_run(notebook, f, output_dir, date=date, overrides=overrides))
        except ReportError as exc:
            results.append(getattr(exc, "result", ReportResult(notebook=notebook or "?", name=Path(f).stem,
                                                                 parameters=Path(f), error=str(exc))))
        except ParameterError as exc:
            results.append(ReportResult(notebook=notebook or "?", name=Path(f).stem, parameters=Path(f),
                                        error=str(exc), bad_input=True))
        if log:
            r = results[-1]
            log(f"{r.name}: {'ok ' + str(r.output) if r.ok else 'FAILED ' + r.error}")
    return results


# ---------------------------------------------------------------------------- text
def plain_summary(summary: Mapping[str, Any], html_path: Path | None = None) -> str:
    """One plain-language paragraph from a report's summary.json."""
    d = summary.get("data", {})
    parts = [f"{summary.get('run', {}).get('report', summary.get('notebook', 'report'))} on {d.get('source')} "
             f"data up to {d.get('cutoff')} ({d.get('leads', 0):,} leads, {d.get('model')} model)."]
    ln = summary.get("leads_needed")
    if ln:
        if ln.get("feasible"):
            parts.append(f"To win {ln['target_wins']:g} deals in the next {ln['window_months']} months with "
                         f"{ln['confidence']:.0%} confidence you need {ln['leads']:,} new leads per month "
                         f"(P(hit) {ln['probability']:.2f}); the naive spreadsheet answer, {ln['naive_leads']:,}, "
                         f"would hit it with P {ln['naive_probability']:.2f}.")
        else:
            parts.append(f"The target is out of reach: {ln['message']}.")
    fc = summary.get("forecast")
    if fc:
        f0 = fc[0]
        tot = summary.get("forecast_total", {})
        parts.append(f"Expected wins in {f0['month']}: {f0['wins_mean']:.1f} (80%: {f0['wins_lo_80']:.0f}-"
                     f"{f0['wins_hi_80']:.0f})" + (f"; {tot['wins_mean']:.0f} over {len(fc)} months." if tot else "."))
    bn = summary.get("bottleneck")
    if bn:
        parts.append(f"Focus here: {bn['lever']} at {bn['stage']} (+{bn['extra_wins_mean']:.1f} wins/month).")
    ew = summary.get("early_warning")
    if ew and ew.get("flagged"):
        parts.append("Early warning at " + ", ".join(f"{k} ({v})" for k, v in ew["flags"].items()) + ".")
    pc = summary.get("process_change")
    if pc:
        parts.append(f"{pc['name'] or 'The change'} at {pc['stage']} moved conversion from "
                     f"{100 * pc['rate_before']:.1f}% to {100 * pc['rate_after']:.1f}% (P(improved) "
                     f"{pc['p_improved']:.2f}), about {pc['extra_wins_per_month']:.1f} extra wins per month.")
    pp = summary.get("plan_periods")
    if pp:
        parts.append("Leads per month needed: " + ", ".join(f"{r['period']} {r['leads per month']}" for r in pp) + ".")
    dg = summary.get("diagnostics")
    if dg:
        parts.append(dg.get("message", "") if dg.get("ok") else "WARNING: " + dg.get("message", ""))
    if html_path is not None:
        parts.append(f"Report: {html_path}")
    return " ".join(p for p in parts if p)
