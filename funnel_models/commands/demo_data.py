"""``funnel demo-data``: write the seeded demo funnel (and its spec) to files."""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from . import Command
from .output import atomic_write

__all__ = ["COMMAND", "handler", "add_arguments"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``demo-data`` arguments to its parser."""
    p.add_argument("-o", "--output", default="demo_history.csv",
                   help="output file, .csv or .parquet (default: demo_history.csv)")
    p.add_argument("--spec-out", default="demo_spec.yaml", help="where to write the spec YAML (default: demo_spec.yaml)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--months", type=int, default=36, help="number of months (default: 36)")


def handler(args: argparse.Namespace) -> int:
    """Write the demo history and spec; returns the exit status."""
    from ..datasets.demo import demo_data
    from ..errors import FunnelDataError

    out = Path(args.output)
    if out.suffix not in (".csv", ".parquet"):
        raise FunnelDataError(f"{out}: the output must end in .csv or .parquet")
    d = demo_data(seed=args.seed, months=args.months)
    if out.suffix == ".csv":
        atomic_write(out, lambda p: d.history.to_csv(p, index=False))
    else:
        atomic_write(out, lambda p: d.history.to_parquet(p, index=False))
    spec_path = Path(args.spec_out)
    atomic_write(spec_path, lambda p: p.write_text(yaml.safe_dump(d.spec.to_dict(), sort_keys=False)))
    print(f"wrote {len(d.history):,} stage changes of {d.history['lead_id'].nunique():,} leads "
          f"({d.history['entered_at'].min():%Y-%m} to {d.cutoff:%Y-%m}) to {out} and the spec to {spec_path}")
    return 0


COMMAND = Command(
    "demo-data", help="write the demo funnel (known truth) as stage history + spec",
    description="Generate the seeded demo funnel: 6 stages, 36 months, region x channel, "
    "seasonal volume, skips, a process change at DEMO from 2025-01 and deal values.",
    epilog="example: funnel demo-data -o demo.csv --spec-out demo_spec.yaml && "
    "funnel ingest demo.csv --spec demo_spec.yaml",
    add_arguments=add_arguments, run=handler, raw_text=False)
