"""What a finished output costs a rerun with nothing to do, and a `plan`, at two output sizes.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_resume.py [--outputs 8] [--repeats 3]

Builds a 1-layer ESM2 of hidden size 1280 (random weights), then two folders of finished
outputs, each written as a run writes it (the package's writer, the manifest a run builds
from the parsed input) rather than computed: `--outputs` FASTA files of 100 records, and as
many of 10,000 records (1280 dims, ~51 MB per output). For each size it times, best of
`--repeats` (warm page cache, as a rerun right after a run):

- a no-op rerun: `extract_files(<files>, out, model=<loaded>)`, every output skipped;
- a plan: `fastesm-extract plan <folder> -o out --model <checkpoint>` in this process.

Per finished output: (time over every output - time over one) / (outputs - 1), so the costs
paid once per run (the model's identity, the pre-scan's setup) cancel out. The last line is
`ratio R`: the larger of the two ratios (10,000 records over 100) of the per-output times.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import environment, machine_line

from fastesm_extract import extract_files, load_model
from fastesm_extract.cli.main import main as cli_main
from fastesm_extract.demo import build_demo_checkpoint
from fastesm_extract.disk.fasta import read_fasta
from fastesm_extract.disk.manifest import (
    Provenance,
    build_manifest,
    save_output_and_manifest,
    utc_now,
)
from fastesm_extract.disk.store import embeddings_from_block

HIDDEN, SIZES = 1280, (100, 10_000)
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def write_finished(folder: Path, out: Path, loaded, outputs: int, records: int) -> list[Path]:
    """`outputs` FASTA files of `records` proteins and their finished outputs + manifests."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(records)
    provenance = Provenance.of(loaded, truncation_seq_length=1024, toks_per_batch=4096)
    fastas = []
    for index in range(outputs):
        fasta = folder / f"output_{index}.fa"
        letters = torch.randint(0, 20, (records, 120), generator=generator).tolist()
        fasta.write_text(
            "".join(
                f">read_{index}_{i}_chunk_1R2\n{''.join(AMINO_ACIDS[c] for c in row)}\n"
                for i, row in enumerate(letters)
            )
        )
        contents = read_fasta(fasta)
        ids = [record.id for record in contents.records]
        block = torch.randn(records, HIDDEN, generator=generator)
        manifest = build_manifest(provenance, contents.source, records, records, [], utc_now())
        save_output_and_manifest(
            out / f"{fasta.stem}_ESM.pt", ids, embeddings_from_block(block), manifest
        )
        fastas.append(fasta)
    return fastas


def best_seconds(action, files: list[Path], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action(files)
        times.append(time.perf_counter() - started)
    return min(times)


def no_op_run(loaded, fastas: list[Path], out: Path) -> None:
    summary = extract_files(fastas, out, model=loaded, show_progress=False)
    if summary.count("skipped") != len(fastas):
        raise SystemExit(f"not a no-op rerun: {[r.status for r in summary.results]}")


def plan(checkpoint: Path, fastas: list[Path], out: Path) -> None:
    argv = ["plan", *map(str, fastas), "-o", str(out), "--model", str(checkpoint)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = cli_main([*argv, "--device", "cpu", "-q"])
    if status != 0:
        raise SystemExit(f"plan exited {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("fastesm_extract").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    print(machine_line(environment()), f"| nproc {os.cpu_count()}", sep="")
    per_output: dict[str, dict[int, float]] = {"rerun": {}, "plan": {}}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        checkpoint = build_demo_checkpoint(
            root / "model", num_layers=1, hidden_size=HIDDEN, num_heads=20
        )
        loaded = load_model(str(checkpoint), device="cpu")
        for records in SIZES:
            out = root / f"out_{records}"
            fastas = write_finished(root / f"in_{records}", out, loaded, args.outputs, records)
            for name, action in (
                ("rerun", functools.partial(no_op_run, loaded, out=out)),
                ("plan", functools.partial(plan, checkpoint, out=out)),
            ):
                action(fastas)  # warm: page cache, imports
                every = best_seconds(action, fastas, args.repeats)
                one = best_seconds(action, fastas[:1], args.repeats)
                per_output[name][records] = (every - one) / (len(fastas) - 1)
                print(
                    f"{name:>5}, {records:>6} records x {HIDDEN}: {1000 * every:8.1f} ms for"
                    f" {len(fastas)} outputs, {1000 * one:7.1f} ms for 1;"
                    f" {1000 * per_output[name][records]:6.2f} ms per finished output"
                )
    ratios = {name: sizes[SIZES[1]] / sizes[SIZES[0]] for name, sizes in per_output.items()}
    print(", ".join(f"{name} ratio {ratio:.2f}" for name, ratio in ratios.items()))
    print(f"ratio {max(ratios.values()):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
