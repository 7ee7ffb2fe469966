"""What every benchmark script's command line shares: workload size options and publishing."""

from __future__ import annotations

import argparse
from pathlib import Path

from machine import REPO_ROOT
from markdown import update_markdown


def add_run_arguments(parser: argparse.ArgumentParser, defaults: str = "per mode") -> None:
    """--files, --records, --repeats, --seed, --output, --no-write."""
    parser.add_argument("--files", type=int, help=f"FASTA files (default: {defaults})")
    parser.add_argument("--records", type=int, help=f"proteins per file (default: {defaults})")
    parser.add_argument("--repeats", type=int, help=f"runs per variant, best kept ({defaults})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch --output")


def publish(lines: list[str], mode: str, args: argparse.Namespace) -> None:
    """Print a rendered section and, unless --no-write, replace it in --output."""
    print("\n".join(lines) + "\n", flush=True)
    if not args.no_write:
        update_markdown(args.output, mode, lines)
