"""``funnel dashboard``: serve the what-if dashboard (notebooks/what_if.ipynb) with Voila.

The notebook is located in ``./notebooks`` (or a parent directory's ``notebooks``), else
next to the installed package (the repository root of an editable install); it is not
shipped inside the wheel. The parameter file is handed to the notebook through the
``FUNNEL_PARAMS`` environment variable (Voila does not run papermill parameters);
``FUNNEL_WORKDIR`` carries the directory the command was started from, against which
relative paths in the parameter file are resolved, and ``FUNNEL_DEBUG`` is set by
``--debug``.

The server listens on 127.0.0.1 unless ``--host`` says otherwise; code cells are hidden
(Voila's default) and tracebacks are shown only with ``--debug``
(``--show_tracebacks=True``).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import ParameterError

__all__ = ["register", "handler", "voila_command", "NOTEBOOK"]

#: The dashboard notebook, relative to the repository root.
NOTEBOOK = Path("notebooks") / "what_if.ipynb"

_EXAMPLE = """\
examples:
  funnel dashboard                               # demo data, quick model
  funnel dashboard parameters/what_if.yaml --port 8870
  funnel dashboard params.yaml --no-browser --debug
"""


def voila_command(notebook: str | Path, *, port: int, host: str = "127.0.0.1", debug: bool = False,
                  no_browser: bool = False) -> list[str]:
    """The Voila command line serving ``notebook`` (run with this interpreter)."""
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={int(port)}", f"--Voila.ip={host}"]
    if no_browser:
        cmd.append("--no-browser")
    if debug:
        cmd.append("--show_tracebacks=True")
    return cmd


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel dashboard``; returns Voila's exit status."""
    from ..dashboard.widget import find_repo_file, load_params
    env = dict(os.environ)
    workdir = Path.cwd()
    if args.params:
        path = Path(args.params).resolve()
        if not path.exists():
            raise ParameterError(f"parameter file {args.params} does not exist")
        load_params(path, base_dir=workdir)          # fail here, not inside the served notebook
        env["FUNNEL_PARAMS"] = str(path)
    else:
        env.pop("FUNNEL_PARAMS", None)
    env["FUNNEL_WORKDIR"] = str(workdir)
    if args.debug:
        env["FUNNEL_DEBUG"] = "1"
    else:
        env.pop("FUNNEL_DEBUG", None)
    notebook = find_repo_file(NOTEBOOK)
    cmd = voila_command(notebook, port=args.port, host=args.host, debug=args.debug, no_browser=args.no_browser)
    print(f"what-if dashboard: http://{args.host}:{args.port}/   "
          f"(parameters: {env.get('FUNNEL_PARAMS', 'built-in defaults')})")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can open the dashboard",
              file=sys.stderr)
    print("press Ctrl-C to stop", flush=True)
    proc = subprocess.Popen(cmd, env=env, cwd=str(notebook.parent), start_new_session=True)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, stop)    # stop Voila too when we are terminated
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``dashboard`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "dashboard", help="serve the interactive what-if dashboard (Voila)",
        description="Serve notebooks/what_if.ipynb with Voila: leads needed for a target, P(hit) with the "
        "planned leads, the forecast fan chart and where to act, with controls for the target, window, "
        "confidence, planned leads, stage multipliers and segments. Listens on 127.0.0.1 by default.",
        epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("params", nargs="?", metavar="PARAMS.yaml",
                   help="what-if parameter file (default: demo data, quick model)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the dashboard to the network)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks in the page")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(func=handler)
    return p


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    from ..cli import main as cli_main
    return cli_main(["dashboard", *(argv or [])])
