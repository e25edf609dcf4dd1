"""Run report notebooks unattended with papermill and publish them.

:func:`run_report` executes a notebook with a parameter file and publishes
``<output_dir>/<name>/<YYYY-MM-DD>/`` with the executed notebook, a self-contained HTML
report without code (``<notebook>.html``) and ``summary.json``. ``<name>`` is the
notebook name, or ``<notebook>-<parameter file stem>`` for a parameter file other than
``default.yaml``.

Before anything runs
    :func:`plan_run` loads the parameter file (:func:`funnel_models.params.load_parameter_file`),
    runs :func:`funnel_models.preflight.preflight` and checks the notebook declares every
    parameter it will be given (:func:`~funnel_models.reports.notebooks.check_declared`).
    Every problem is a :class:`~funnel_models.errors.ParameterError` (exit status 2) and
    nothing is written. The notebook then gets *every* parameter of the file (the top
    level and its section, defaults included), so the notebook's own defaults never
    apply under the runner.

What reaches the report
    Anything the kernel writes to stderr (library warnings, progress bars) is removed from
    the executed notebook before it is saved and exported, and handed to the caller's log
    (:attr:`ReportResult.log`); data warnings are notes in the report itself.

Failure contract
    Everything is written into a temporary folder and published by
    :mod:`funnel_models.reports.publish` (a kill at any moment leaves ``latest`` on a complete
    report). When a cell raises, the executed notebook with its error is kept in
    ``<name>/<date>.failed/`` (with ``error.txt``), :class:`~funnel_models.errors.ReportError`
    names the cell and the error, and the last good report and ``latest`` are untouched.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

from ..errors import ParameterError, ReportError
from ..params import NOTEBOOK_SECTIONS, ParameterFile, notebook_parameters
from . import publish
from .notebooks import DEFAULT_PARAMETERS, check_declared, load_parameters, resolve_notebook, resolve_parameters
from .summary import plain_summary

__all__ = ["ReportResult", "RunPlan", "run_report", "plan_run", "execute", "batch", "report_name", "kernel_name",
           "export_html", "plain_summary", "resolve_notebook", "resolve_parameters"]


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
    busy: bool = False
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunPlan:
    """A validated report run: what :func:`execute` needs, checked by :func:`plan_run`."""

    notebook: str
    notebook_path: Path
    parameters_path: Path | None
    params: ParameterFile
    values: dict[str, Any]
    date: str

    @property
    def name(self) -> str:
        """The report's folder name."""
        return report_name(self.notebook, self.parameters_path)


def report_name(notebook: str, parameters: Path | None) -> str:
    """Folder name of a report: the notebook, plus ``-<stem>`` unless the file is default.yaml."""
    if parameters is None or parameters.name == DEFAULT_PARAMETERS:
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


# ---------------------------------------------------------------------------- notebook output
def strip_stderr(nb: Any) -> list[str]:
    """Remove every stderr stream output from an executed notebook; returns their text."""
    removed = []
    for cell in nb.cells:
        keep = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                removed.append(str(out.get("text", "")).rstrip())
            else:
                keep.append(out)
        if "outputs" in cell:
            cell["outputs"] = keep
    return [r for r in removed if r]


def export_html(nb: Any, target: Path, title: str) -> Path:
    """Export an executed notebook to self-contained HTML without code cells.

    Uses nbconvert's ``HTMLExporter`` (lab template) with ``exclude_input=True``; images
    are embedded as data URIs; external scripts (MathJax, require.js) are left out so the
    file opens offline.
    """
    import re
    from nbconvert import HTMLExporter
    exp = HTMLExporter(template_name="lab")
    exp.exclude_input = True
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    body, _ = exp.from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    target.write_text(body, encoding="utf-8")
    return target


# ---------------------------------------------------------------------------- planning
def _date(date: str | None) -> str:
    if date is None:
        return _dt.date.today().isoformat()
    try:
        return _dt.date.fromisoformat(str(date)).isoformat()
    except ValueError:
        raise ParameterError(f"--date must look like YYYY-MM-DD, got {date!r}") from None


def plan_run(notebook: str | os.PathLike[str] | None, parameters: str | os.PathLike[str] | None,
             overrides: Mapping[str, Any] | None = None, date: str | None = None, *, wait: float = 0.0) -> RunPlan:
    """Validate a run before anything runs: parameter file, preflight, notebook declarations.

    ``notebook`` (None: the file's ``notebook`` key, else ``monthly_report``) and
    ``parameters`` (None: ``default.yaml``, the demo) are names or paths.

    Raises
    ------
    ParameterError
        Any problem (exit status 2); StoreBusyError when the source store is in use.
    """
    from ..preflight import preflight
    date = _date(date)
    ppath, params, nb_key = load_parameters(parameters, overrides)
    name = Path(str(notebook or nb_key or "monthly_report")).stem
    nb_path = resolve_notebook(notebook or name)
    values = notebook_parameters(params, name)
    check_declared([*values, "summary_path"], nb_path, where=str(ppath))
    preflight(params, name, where=str(ppath), wait=wait)
    return RunPlan(notebook=name, notebook_path=nb_path, parameters_path=ppath, params=params, values=values,
                   date=date)


# ---------------------------------------------------------------------------- execution
def _cell_error(exc: BaseException) -> tuple[str, str]:
    """(Which cell failed and why, the error's type name), from a papermill error."""
    idx = getattr(exc, "cell_index", None)
    src = getattr(exc, "source", "") or ""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    if idx is None:
        return f"{ename}: {evalue}", ename
    code = [ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return f"cell {idx} (`{(code[-1] if code else '')[:100]}`): {ename}: {evalue}", ename


@contextlib.contextmanager
def _kernel_stderr(res: ReportResult) -> Iterator[TextIO]:
    """Send file descriptor 2 (inherited by the kernel) to a temporary file for the run, so
    nothing the kernel prints (warnings, its own tracebacks when interrupted) reaches the
    terminal or a cron mail; the text goes to ``res.log``. Yields a stream to the real
    stderr (for the progress bar)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        real = os.fdopen(os.dup(saved), "w", encoding="utf-8", errors="replace")
        try:
            yield real
        finally:
            real.close()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            text = buf.read().decode("utf-8", errors="replace").strip()
            if text:
                res.log.append(text)


def _papermill(plan: RunPlan, out_nb: Path, values: dict[str, Any], kernel: str | None, progress: bool,
               cwd: Any, timeout: int | None, res: ReportResult) -> None:
    import papermill as pm
    for name in ("papermill", "traitlets", "nbclient", "jupyter_client", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with _kernel_stderr(res) as stderr:
        pm.execute_notebook(str(plan.notebook_path), str(out_nb), parameters=values,
                            kernel_name=kernel or kernel_name(),
                            progress_bar={"desc": plan.name, "unit": "cell", "file": stderr} if progress else False,
                            log_output=False, cwd=str(cwd or Path.cwd()), execution_timeout=timeout,
                            report_mode=False, extra_arguments=["--IPKernelApp.log_level=ERROR"])


def _finish(plan: RunPlan, out_nb: Path, res: ReportResult) -> None:
    """Strip stderr from the executed notebook (into the log), save it, export the HTML."""
    import nbformat
    nb = nbformat.read(str(out_nb), as_version=4)
    res.log.extend(strip_stderr(nb))
    nbformat.write(nb, str(out_nb))
    section = getattr(plan.params, NOTEBOOK_SECTIONS.get(plan.notebook, ""), None)
    export_html(nb, out_nb.with_suffix(".html"), title=getattr(section, "title", plan.notebook))


def _failed(plan: RunPlan, folder: Path, tmp: Path, out_nb: Path, exc: BaseException, res: ReportResult) -> None:
    why, ename = _cell_error(exc)
    if out_nb.is_file():
        _finish_failed(out_nb, res)
    (tmp / "error.txt").write_text(f"{plan.name} {plan.date}: {why}\n", encoding="utf-8")
    (tmp / "summary.json").unlink(missing_ok=True)
    res.failed = publish.publish_failed(folder, tmp, plan.date)
    res.busy = ename == "StoreBusyError"
    latest = folder / "latest"
    last = os.readlink(latest) if latest.is_symlink() else "none yet"
    res.error = (f"report {plan.name} failed in {why}. The failed notebook is kept in "
                 f"{res.failed / out_nb.name}; the last good report ({latest} -> {last}) is untouched.")


def _finish_failed(out_nb: Path, res: ReportResult) -> None:
    import nbformat
    try:
        nb = nbformat.read(str(out_nb), as_version=4)
    except Exception:  # noqa: BLE001 - a half-written notebook stays as it is
        return
    res.log.extend(strip_stderr(nb))
    nbformat.write(nb, str(out_nb))


def execute(plan: RunPlan, output_dir: str | os.PathLike[str] = "reports", *, kernel: str | None = None,
            progress: bool = False, cwd: str | os.PathLike[str] | None = None, timeout: int | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> ReportResult:
    """Execute a planned run and publish it (or keep the failed notebook); never raises for
    a failing notebook: see ``ok``, ``error`` and ``failed`` of the result.

    ``cancelled`` tells whether the caller was interrupted (a signal handler's flag): an
    error that follows an interruption (the kernel shut down under it) is then not a
    failed report but :class:`KeyboardInterrupt`, and nothing is kept.
    """
    from papermill.exceptions import PapermillExecutionError
    res = ReportResult(notebook=plan.notebook, name=plan.name, parameters=plan.parameters_path)
    folder = Path(output_dir) / plan.name
    with publish.report_lock(folder):
        publish.recover(folder)
    tmp = publish.staging_folder(folder, plan.date)
    out_nb = tmp / f"{plan.notebook}.ipynb"
    summary_path = tmp / "summary.json"
    t0 = time.perf_counter()
    try:
        try:
            _papermill(plan, out_nb, {**plan.values, "summary_path": str(summary_path.resolve())}, kernel,
                       progress, cwd, timeout, res)
            if not summary_path.is_file():
                raise ReportError(f"{plan.notebook_path.name} ran but did not write summary.json; its last cell "
                                  "must call write_summary(ctx)")
        except (PapermillExecutionError, ReportError, RuntimeError, OSError, TimeoutError) as exc:
            if cancelled():
                raise KeyboardInterrupt("interrupted") from None
            res.seconds = time.perf_counter() - t0
            _failed(plan, folder, tmp, out_nb, exc, res)
            return res
        _finish(plan, out_nb, res)
        res.seconds = time.perf_counter() - t0
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["run"] = {"notebook": plan.notebook, "report": plan.name,
                          "parameters_file": plan.parameters_path.name if plan.parameters_path else None,
                          "date": plan.date, "seconds": round(res.seconds, 1)}
        summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        res.output = publish.publish(folder, tmp, plan.date)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    res.ok, res.summary = True, summary
    return res


def run_report(
    notebook: str | os.PathLike[str] | None = "monthly_report",
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
    notebook : str or path, optional
        Name (``monthly_report``, ``lead_planning``, ``process_change``, ``backtest``) or
        path of the notebook; None: the parameter file's ``notebook`` key.
    parameters : path, optional
        YAML parameter file (name or path). Default: ``default.yaml`` (the demo).
    output_dir : path
        Root of the report folders.
    date : str, optional
        ``YYYY-MM-DD`` of the report folder (default today).
    overrides : mapping, optional
        Values layered on top of the file (same form as the file).
    kernel : str, optional
        Kernel name (default :func:`kernel_name`).
    progress : bool
        Show the cells done / total and the elapsed time on stderr.
    cwd : path, optional
        Working directory of the kernel (default the current directory, so relative data
        paths in parameter files mean the same as on the command line).
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
    plan = plan_run(notebook, parameters, overrides, date)
    res = execute(plan, output_dir, kernel=kernel, progress=progress, cwd=cwd, timeout=timeout)
    if not res.ok:
        err = ReportError(res.error)
        err.result = res  # type: ignore[attr-defined]
        raise err
    assert res.output is not None
    return res.output


def _several_fits(plans: list[RunPlan | ReportResult], progress: bool,
                  log: Callable[[str], None] | None) -> list[RunPlan | ReportResult]:
    """Plans whose ``sampler.backend`` is ``auto`` sample with Numba when the batch fits
    more than one model (:meth:`~funnel_models.models.config.SamplerConfig.for_several_fits`);
    the notebook gets the same settings, so it finds the fit in the fit cache."""
    def switch(p: RunPlan | ReportResult) -> bool:
        return isinstance(p, RunPlan) and p.params.sampler.backend == "auto" and p.params.model != "conjugate"
    if sum(isinstance(p, RunPlan) for p in plans) < 2 or not any(switch(p) for p in plans):
        return plans
    _say("fitting with nutpie's Numba backend (sampler.backend: auto in a batch): it compiles for longer "
         "and samples faster, and later fits of the same model structure reuse the compiled graph", progress, log)
    out: list[RunPlan | ReportResult] = []
    for p in plans:
        if switch(p):
            assert isinstance(p, RunPlan)
            params = p.params.model_copy(update={"sampler": p.params.sampler.for_several_fits()})
            p = replace(p, params=params, values=notebook_parameters(params, p.notebook))
        out.append(p)
    return out


def _say(msg: str, progress: bool, log: Callable[[str], None] | None) -> None:
    """A line of the batch's own progress: on stderr (unless quiet) and in the log file."""
    if progress:
        print(msg, file=sys.stderr, flush=True)
    if log:
        log(msg)


def _prefit(plans: Sequence[RunPlan], progress: bool, log: Callable[[str], None] | None,
            cancelled: Callable[[], bool]) -> None:
    """Fit every plan's model in this process, saying for each what was compiled or reused."""
    from ..models.base import fit_summary
    from .context import prefit
    for i, plan in enumerate(plans, 1):
        if cancelled():
            return
        t0 = time.perf_counter()
        try:
            info = prefit(plan.notebook, plan.params)
        except Exception as exc:  # noqa: BLE001 - the report run fails on it and names the cell
            msg = f"fit {i}/{len(plans)} {plan.name}: failed ({type(exc).__name__}); its report will say why"
        else:
            if info is None:
                continue
            msg = f"fit {i}/{len(plans)} {plan.name}: {fit_summary(info)} ({time.perf_counter() - t0:.0f} s)"
        _say(msg, progress, log)


def batch(
    files: Sequence[str | os.PathLike[str]],
    *,
    notebook: str | None = None,
    output_dir: str | os.PathLike[str] = "reports",
    date: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    overrides: Mapping[str, Any] | None = None,
    wait: float = 0.0,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[ReportResult]:
    """Run several parameter files one after the other with a progress bar.

    Every file is planned (validated and preflighted) first; invalid files are reported
    (``bad_input=True``) and not run. Then the models are fitted here, one file after the
    other, so that fits of one model structure compile it once (:func:`_prefit`); the
    notebooks load the fits from the fit cache. A failing report does not stop the batch.
    Returns one result per file, in order.
    """
    from tqdm.auto import tqdm
    plans: list[RunPlan | ReportResult] = []
    for f in files:
        try:
            plans.append(plan_run(notebook, f, overrides, date, wait=wait))
        except ParameterError as exc:
            plans.append(ReportResult(notebook=notebook or "?", name=Path(f).stem, parameters=Path(f),
                                      error=str(exc), bad_input=True))
    plans = _several_fits(plans, progress, log)
    _prefit([p for p in plans if isinstance(p, RunPlan)], progress, log, cancelled)
    results: list[ReportResult] = []
    bar = tqdm(plans, desc="reports", unit="report", disable=not progress, file=sys.stderr)
    for p in bar:
        if isinstance(p, ReportResult):
            results.append(p)
            continue
        bar.set_postfix_str(p.name)
        results.append(execute(p, output_dir, cancelled=cancelled))
        if log:
            r = results[-1]
            log(f"{r.name}: {'ok ' + str(r.output) if r.ok else 'FAILED ' + r.error}")
            for line in r.log:
                log(f"{r.name}: kernel stderr: {line}")
    return results
