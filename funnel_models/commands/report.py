"""``funnel report``: execute report notebooks with parameter files and publish them.

Writes ``<output-dir>/<name>/<YYYY-MM-DD>/`` (executed notebook, HTML without code,
summary.json) and points ``<output-dir>/<name>/latest`` at it, only after success.
Exit status: 0 ok, 1 a report failed (its notebook is kept in ``<date>.failed/``),
2 bad input (parameter file, notebook, date), checked before anything runs.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import signal
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import FunnelError, ParameterError, ReportError

__all__ = ["register", "handler"]

_EXAMPLE = """\
examples:
  funnel report                                   # demo data, parameters/default.yaml
  funnel report parameters/region_north.yaml      # -> reports/monthly_report-region_north/<date>/
  funnel report parameters/*.yaml --quiet         # batch with a progress bar
  funnel report --notebook lead_planning          # the lead planning notebook on its defaults
  funnel report my.yaml --output-dir /srv/reports --log-file /var/log/funnel.log --date 2026-01-31

Parameter files are YAML; 'extends: default.yaml' layers a file on another and
'notebook: NAME' picks the notebook. Bare names are looked up in ./notebooks and
./parameters, then in the copies shipped with the package.
"""


def _logger(path: str | None) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if path:
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {msg}\n")
    return log


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel report``; returns the exit status."""
    from ..reports.runner import _run, batch, plain_summary
    log = _logger(args.log_file)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    files = args.parameters or [None]
    if len(files) == 1:
        try:
            res = _run(args.notebook, files[0], args.output_dir, date=args.date, progress=False)
        except ParameterError as exc:
            log(f"bad input: {exc}")
            raise
        except ReportError as exc:
            log(f"FAILED: {exc}")
            print(f"error: {exc}", file=sys.stderr)
            return 1
        html = next(res.output.glob("*.html"), None) if res.output else None
        log(f"ok {res.name}: {res.output} ({res.seconds:.0f} s)")
        if not args.quiet:
            print(plain_summary(res.summary or {}, html))
        return 0
    # a batch validates every file first: one bad file -> exit 2 before anything runs
    from ..reports.runner import _prepare_run
    invalid = []
    for f in files:
        try:
            _prepare_run(args.notebook, f, None, args.date)
        except ParameterError as exc:
            invalid.append(f"  BAD INPUT {f}: {exc}")
    if invalid:
        log("bad input, nothing run: " + " | ".join(invalid))
        print(f"{len(invalid)} of {len(files)} parameter file(s) are invalid; nothing was run:", file=sys.stderr)
        print("\n".join(invalid), file=sys.stderr)
        return 2
    results = batch(files, notebook=args.notebook, output_dir=args.output_dir, date=args.date,
                    progress=not args.quiet, log=log)
    bad = [r for r in results if r.bad_input]
    failed = [r for r in results if not r.ok and not r.bad_input]
    lines = []
    for r in results:
        status = "ok" if r.ok else "BAD INPUT" if r.bad_input else "FAILED"
        where = str(r.output) if r.ok else r.error
        lines.append(f"  {status:9s} {r.parameters}: {where}")
    print(f"{len(results) - len(bad) - len(failed)} of {len(results)} report(s) ok:", file=sys.stderr if (bad or failed) else sys.stdout)
    print("\n".join(lines), file=sys.stderr if (bad or failed) else sys.stdout)
    if failed:
        return 1
    return 2 if bad else 0


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "report", help="run report notebooks (papermill) and publish notebook, HTML and summary.json",
        description="Execute a report notebook for each parameter file and publish "
        "OUTPUT-DIR/<name>/<date>/ atomically (executed .ipynb, .html without code, summary.json). "
        "With no PARAMS.yaml: the demo data (default.yaml).",
        epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parameters", nargs="*", metavar="PARAMS.yaml", help="parameter files (default: default.yaml)")
    p.add_argument("--notebook", metavar="NAME", default=None,
                   help="monthly_report (default), lead_planning, process_change, or a .ipynb path")
    p.add_argument("--output-dir", default="reports", metavar="DIR", help="report root folder (default ./reports)")
    p.add_argument("--quiet", action="store_true", help="no summary paragraph or progress bar")
    p.add_argument("--log-file", metavar="FILE", help="append one line per report (status, folder, error)")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="date of the report folder (default today)")
    p.set_defaults(func=handler)
    return p
