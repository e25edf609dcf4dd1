"""``funnel dashboard``: serve the what-if dashboard (the ``what_if`` notebook) with Voila.

The notebook is looked up like the report runner's notebooks: ``./notebooks/what_if.ipynb``
of the current directory, else the copy shipped inside the package
(``funnel_models/templates/``), so the command works from any directory after a
non-editable ``pip install .``. The parameter file is the same family as ``funnel
report``'s; with none, ``parameters/default.yaml`` (or the packaged copy) gives the
monthly report's defaults. It is validated here (exit 2 with the problem named) and handed
to the notebook through ``FUNNEL_PARAMS`` (Voila does not run papermill parameters);
``FUNNEL_WORKDIR`` carries the directory the command was started from, where the notebook
resolves relative paths, and ``FUNNEL_DEBUG`` is set by ``--debug``.

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

from . import Command, add_parameter_file_argument

__all__ = ["COMMAND", "handler", "add_arguments", "voila_command", "NOTEBOOK"]

#: The dashboard notebook's name (``notebooks/what_if.ipynb``, shipped as a template).
NOTEBOOK = "what_if"
#: JupyterLab extensions of the editor that fail to load in Voila's page (console errors).
EDITOR_ONLY_EXTENSIONS = ("jupyterlab-jupytext", "@voila-dashboards/jupyterlab-preview")

_EXAMPLE = """\
examples:
  funnel dashboard                               # the monthly report's defaults (parameters/default.yaml)
  funnel dashboard parameters/region_north.yaml --port 8870
  funnel dashboard params.yaml --no-browser --debug
"""


def voila_command(notebook: str | Path, *, port: int, host: str = "127.0.0.1", debug: bool = False,
                  no_browser: bool = False) -> list[str]:
    """The Voila command line serving ``notebook`` (run with this interpreter)."""
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={int(port)}", f"--Voila.ip={host}"]
    cmd += [f"--VoilaConfiguration.extension_denylist={name}" for name in EDITOR_ONLY_EXTENSIONS]
    if no_browser:
        cmd.append("--no-browser")
    if debug:
        cmd.append("--show_tracebacks=True")
    return cmd


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel dashboard``; returns Voila's exit status."""
    from ..dashboard.settings import load_dashboard_parameters
    from ..reports.runner import resolve_notebook
    env = dict(os.environ)
    workdir = Path.cwd()
    _params, found = load_dashboard_parameters(args.params)   # fail here, not inside the served notebook
    env["FUNNEL_PARAMS"] = str(Path(found).resolve())
    env["FUNNEL_WORKDIR"] = str(workdir)
    if args.debug:
        env["FUNNEL_DEBUG"] = "1"
    else:
        env.pop("FUNNEL_DEBUG", None)
    notebook = resolve_notebook(NOTEBOOK).resolve()
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``dashboard`` arguments to its parser."""
    add_parameter_file_argument(p, help="parameter file (default: parameters/default.yaml, the monthly report's)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the dashboard to the network)")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks in the page")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")


COMMAND = Command(
    "dashboard", help="serve the interactive what-if dashboard (Voila)",
    description="Serve the what-if notebook with Voila: leads needed for a target, P(hit) with the "
    "planned leads, the forecast fan chart, where to act and the stage flows, with controls for the target, "
    "window, confidence, planned leads, stage multipliers and segments. Reads the same parameter files as "
    "'funnel report'. Listens on 127.0.0.1 by default.",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    from ..cli import main as cli_main
    return cli_main(["dashboard", *(argv or [])])
