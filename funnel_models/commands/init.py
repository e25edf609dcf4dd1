"""``funnel init DATA``: recognise an export, write a commented spec and a parameters file.

It reads a CSV, Parquet or DuckDB table, recognises its shape (stage history, monthly
snapshots, aggregate counts, or one row per deal), guesses the column roles and the stage
order (:mod:`funnel_models.data.infer`), writes ``NAME.spec.yaml`` and ``NAME.params.yaml``
(the :mod:`funnel_models.params` format) and prints what it assumed, how to change it, and
the next two commands. It tries the written spec on the data before it finishes, and says
if ``funnel ingest`` would refuse the file. Existing files are never overwritten without
``--force``.
"""
from __future__ import annotations

import argparse
import shlex
import warnings
from pathlib import Path
from typing import Any

import yaml

from ..data.infer import Guess, guess_spec
from ..data.readers import read_any
from ..data.spec import FunnelSpec
from ..data.store import DEFAULT_STORE
from ..errors import FunnelDataError, FunnelError, FunnelWarning
from ..params import load_parameter_file
from ..yamlio import read_yaml
from . import Command, add_csv_options, add_store_option
from .output import atomic_write

__all__ = ["COMMAND", "handler", "add_arguments", "spec_text", "params_text"]

_EXAMPLE = """\
examples:
  funnel init crm_export.csv                  # writes crm_export.spec.yaml and crm_export.params.yaml
  funnel init deals.parquet --out-dir config --store data/funnel.duckdb
  funnel init warehouse.duckdb::opportunities --name pipeline
  funnel init export.csv --delimiter ';' --encoding latin-1 --force

It lists every assumption (which column is the lead id, the stage order, won and lost
codes, attributes) and where to change it. Exit status: 0 files written; 2 bad input
(unreadable file, unrecognised shape, files exist without --force); nothing is written then.
"""

_SHAPES = {
    "history": "stage history: one row per stage change",
    "snapshots": "monthly snapshots: the status of every lead at each month end",
    "counts": "aggregate counts: leads per stage and month",
    "opportunities": "one row per deal, a date column per milestone",
}


def _flow(value: Any) -> str:
    """One YAML flow value (quoted where YAML needs it)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def spec_text(guess: Guess, label: str) -> str:
    """The commented spec YAML for ``guess`` (``label`` names the data in the header)."""
    s = guess.spec
    order = {"history": "guessed from the dates", "snapshots": "guessed from the months",
             "counts": "ordered by volume", "opportunities": "one per milestone date column, ordered by the dates"}
    lines = [f"# Funnel spec for {label}, written by `funnel init`.",
             f"# Shape: {_SHAPES[guess.shape]}.",
             "# Lines marked CHECK are guesses; the README ('Input formats') describes every key.",
             f"stages:  # open stages in funnel order (CHECK: {order[guess.shape]})"]
    lines += [f"  - {_flow(st)}" for st in s["stages"]]
    lines.append(f"won: {_flow(s['won'])}  # status codes meaning won (CHECK)")
    lines.append(f"lost: {_flow(s['lost'])}  # status codes meaning lost or disqualified (CHECK)")
    if "status" in s:
        lines.append(f"status: {_flow(s['status'])}  # the column saying won / lost / open (CHECK)")
        lines.append(f"closed_at: {_flow(s['closed_at'])}  # the date a deal was won or lost")
    if s.get("columns"):
        lines.append(f"columns: {_flow(s['columns'])}  # canonical name: your column")
    if s.get("value"):
        lines.append(f"value: {_flow(s['value'])}  # deal value, for revenue targets")
    if s.get("attributes"):
        lines.append(f"attributes: {_flow(s['attributes'])}  # kept for segments and filters")
    lines.append(f"timezone: {_flow(s.get('timezone', 'UTC'))}  # times written with a UTC offset are "
                 "converted to this zone")
    lines.append("# stale_after: 12  # uncomment if losses are never recorded: leads unchanged for 12 "
                 "months then count as lost")
    return "\n".join(lines) + "\n"


def params_text(guess: Guess, label: str, spec_path: str, store: str) -> str:
    """The parameters YAML (``source``, ``spec``, ``factors``, a report title)."""
    title = f"Monthly funnel report: {Path(label.split('::')[0]).name}"
    return "\n".join([
        f"# Parameters for `funnel report` (also fit, backtest, dashboard), written by `funnel init` for {label}.",
        "# Every key and section: README, 'Parameter files'.",
        f"source: {_flow(store)}  # the store `funnel ingest` fills (or the data file itself)",
        f"spec: {_flow(spec_path)}",
        f"factors: {_flow(guess.factors)}  # segment factors (CHECK: attributes with few values); [] for none",
        "monthly_report:",
        f"  title: {_flow(title)}",
    ]) + "\n"


def _targets(args: argparse.Namespace) -> tuple[Path, Path]:
    data = str(args.data)
    stem = args.name or (data.rpartition("::")[2] if "::" in data else Path(data).stem) or "funnel"
    out = Path(args.out_dir)
    spec_path, params_path = out / f"{stem}.spec.yaml", out / f"{stem}.params.yaml"
    existing = [str(p) for p in (spec_path, params_path) if p.exists()]
    if existing and not args.force:
        raise FunnelDataError(f"{', '.join(existing)} already exist(s); funnel init does not overwrite "
                              "files. Fix: pass --force to overwrite, or --out-dir DIR / --name NAME to "
                              "write elsewhere.")
    return spec_path, params_path


def _try_ingest(args: argparse.Namespace, spec: FunnelSpec) -> tuple[str | None, int]:
    """Read the data with the written spec, as `funnel ingest` will: (refusal or None, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FunnelWarning)
        try:
            read_any(args.data, spec, delimiter=args.delimiter, encoding=args.encoding)
        except FunnelError as exc:
            return str(exc), 0
    return None, sum(issubclass(w.category, FunnelWarning) for w in caught)


def _write(spec_path: Path, params_path: Path, spec_yaml: str, params_yaml: str) -> FunnelSpec:
    """Check both texts read back as valid files, then write them (both, or neither)."""
    def check_params(tmp: Path) -> None:
        tmp.write_text(params_yaml, encoding="utf-8")
        load_parameter_file(tmp)

    def check_spec(tmp: Path) -> None:
        tmp.write_text(spec_yaml, encoding="utf-8")
        holder.append(FunnelSpec.from_dict(read_yaml(tmp, FunnelDataError, what="funnel spec"), source=str(tmp)))

    holder: list[FunnelSpec] = []
    atomic_write(spec_path, check_spec)
    try:
        atomic_write(params_path, check_params)
    except BaseException:
        spec_path.unlink(missing_ok=True)
        raise
    return holder[0]


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel init``; returns the exit status."""
    spec_path, params_path = _targets(args)
    guess = guess_spec(args.data, args.delimiter, args.encoding)
    label = guess.profile.label
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)  # e.g. more than 10 stages: said below
        spec = _write(spec_path, params_path, spec_text(guess, label),
                      params_text(guess, label, str(spec_path), str(args.store)))
    refusal, n_warn = _try_ingest(args, spec)
    print(f"recognised {label} as {_SHAPES[guess.shape]} ({guess.profile.rows:,} rows)")
    print(f"assumed (edit {spec_path} / {params_path} to change):")
    for a in guess.assumptions:
        print(f"  - {a}")
    print(f"wrote {spec_path} and {params_path}")
    if refusal:
        print(f"note: `funnel ingest` will refuse the data as it is:\n  {refusal}")
    elif n_warn:
        print(f"note: reading the data with this spec gives {n_warn} warning(s); `funnel ingest` lists them")
    extra = "".join(f" --{k} {shlex.quote(v)}" for k, v in (("delimiter", args.delimiter),
                                                          ("encoding", args.encoding)) if v)
    print("next:")
    print(f"  funnel ingest {shlex.quote(str(args.data))} --spec {shlex.quote(str(spec_path))} "
          f"--store {shlex.quote(str(args.store))}{extra}")
    print(f"  funnel report {shlex.quote(str(params_path))}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``init`` arguments to its parser."""
    p.add_argument("data", metavar="DATA", help="CSV/Parquet file or DB.duckdb::TABLE")
    p.add_argument("--out-dir", default=".", metavar="DIR", help="where to write the two files (default .)")
    p.add_argument("--name", metavar="NAME", help="file name stem (default: the data file's name)")
    add_store_option(p, help=f"the store the parameters point at (default {DEFAULT_STORE})")
    add_csv_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing spec and parameters files")


COMMAND = Command(
    "init", help="recognise a CRM export and write a commented spec and parameters file",
    description="Read DATA (CSV, Parquet or DB.duckdb::TABLE), recognise its shape (stage history, "
    "monthly snapshots, aggregate counts, or one row per deal), guess the column roles and the "
    "stage order, write NAME.spec.yaml and NAME.params.yaml, and print the assumptions and the "
    "next two commands.",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler)
