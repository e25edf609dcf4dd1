"""``funnel report``: execute report notebooks with parameter files and publish them.

Writes ``<output-dir>/<name>/<YYYY-MM-DD>/`` (executed notebook, HTML without code,
summary.json) and points ``<output-dir>/<name>/latest`` at it, only after success.
Exit status: 0 ok; 1 a report failed (its notebook is kept in ``<date>.failed/``);
2 bad input (parameter file, notebook, date, data that is not there), checked for every
file before anything runs; 3 the data store is in use by another process.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import signal
import sys
import threading
from typing import Any, Callable

from . import Command, add_wait_option

__all__ = ["COMMAND", "handler", "add_arguments"]

_EXAMPLE = """\
examples:
  funnel report                                   # demo data, parameters/default.yaml
  funnel report parameters/region_north.yaml      # -> reports/monthly_report-region_north/<date>/
  funnel report parameters/default.yaml parameters/region_north.yaml --quiet   # a batch
  funnel report --notebook lead_planning          # the lead planning notebook on default.yaml
  funnel report --notebook backtest my.yaml       # the backtest as a report
  funnel report my.yaml --output-dir /srv/reports --log-file /var/log/funnel.log --date 2026-01-31

Parameter files are YAML (README, 'Parameter files'): the same file works with funnel fit,
report, backtest and dashboard; 'extends: base.yaml' layers a file on another and
'notebook: NAME' picks the notebook. Bare names are looked up in ./notebooks and
./parameters, then in the copies shipped with the package.

While a single report runs, the cells done / total and the elapsed time are shown on
stderr (--quiet hides them and the summary paragraph). Library warnings never reach the
report: they go to --log-file.

exit status: 0 ok; 1 a report failed (its notebook with the error is kept in
<date>.failed/, the last good report and 'latest' are untouched); 2 bad input, nothing
was run; 3 the data store is busy (retry, or --wait SECONDS).
"""


def _logger(path: str | None) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if path:
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {msg}\n")
    return log


_INTERRUPTED: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM and SIGINT: remember it (so a kernel shut down under the run is not a failed
    report) and stop the run."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def _cancelled() -> bool:
    return bool(_INTERRUPTED)


def _single(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    from ..errors import ParameterError
    from ..reports.runner import execute, plan_run, plain_summary
    try:
        plan = plan_run(args.notebook, args.parameters[0] if args.parameters else None, None, args.date,
                        wait=args.wait)
    except ParameterError as exc:
        log(f"bad input: {exc}")
        raise
    res = execute(plan, args.output_dir, progress=not args.quiet, cancelled=_cancelled)
    for line in res.log:
        log(f"{res.name}: kernel stderr: {line}")
    if not res.ok:
        log(f"FAILED: {res.error}")
        print(f"error: {res.error}", file=sys.stderr)
        return 3 if res.busy else 1
    html = next(res.output.glob("*.html"), None) if res.output else None
    log(f"ok {res.name}: {res.output} ({res.seconds:.0f} s)")
    if not args.quiet:
        print(plain_summary(res.summary or {}, html))
    return 0


def _batch(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    from ..errors import ParameterError
    from ..reports.runner import batch, plan_run
    invalid = []
    for f in args.parameters:
        try:
            plan_run(args.notebook, f, None, args.date, wait=args.wait)
        except ParameterError as exc:
            invalid.append(f"  BAD INPUT {f}: {exc}")
    if invalid:
        log("bad input, nothing run: " + " | ".join(invalid))
        print(f"{len(invalid)} of {len(args.parameters)} parameter file(s) are invalid; nothing was run:",
              file=sys.stderr)
        print("\n".join(invalid), file=sys.stderr)
        return 2
    results = batch(args.parameters, notebook=args.notebook, output_dir=args.output_dir, date=args.date,
                    progress=not args.quiet, log=log, wait=args.wait, cancelled=_cancelled)
    failed = [r for r in results if not r.ok]
    lines = [f"  {'ok' if r.ok else 'FAILED':9s} {r.parameters}: {r.output if r.ok else r.error}" for r in results]
    out = sys.stderr if failed else sys.stdout
    print(f"{len(results) - len(failed)} of {len(results)} report(s) ok:", file=out)
    print("\n".join(lines), file=out)
    if not failed:
        return 0
    return 3 if all(r.busy for r in failed) else 1


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel report``; returns the exit status."""
    log = _logger(args.log_file)
    _INTERRUPTED.clear()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _on_signal)
    if len(args.parameters) <= 1:
        return _single(args, log)
    return _batch(args, log)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``report`` arguments to its parser."""
    p.add_argument("parameters", nargs="*", metavar="PARAMS.yaml", help="parameter files (default: default.yaml)")
    p.add_argument("--notebook", metavar="NAME", default=None,
                   help="monthly_report (default), lead_planning, process_change, backtest, or a .ipynb path")
    p.add_argument("--output-dir", default="reports", metavar="DIR", help="report root folder (default ./reports)")
    p.add_argument("--quiet", action="store_true",
                   help="hide the progress (cells done / total, elapsed) and the summary paragraph")
    p.add_argument("--log-file", metavar="FILE",
                   help="append one line per report (status, folder, error) and the kernel's warnings")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="date of the report folder (default today)")
    add_wait_option(p)


COMMAND = Command(
    "report", help="run report notebooks (papermill) and publish notebook, HTML and summary.json",
    description="Execute a report notebook for each parameter file and publish "
    "OUTPUT-DIR/<name>/<date>/ (executed .ipynb, .html without code, summary.json), then point "
    "OUTPUT-DIR/<name>/latest at it. With no PARAMS.yaml: the demo data (default.yaml).",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler)
