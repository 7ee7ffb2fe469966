"""1 process vs N worker processes (`--devices cpu,cpu`, or GPUs when present), same files.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_workers.py [--files 4] [--records 500] [--repeats 2]

Runs the real CLI in subprocesses over the same synthetic VirNucPro-like workload with the
demo ESM2 (6 layers x 320, random weights): once on one device, once with one worker per
device. On the CPU the single process uses every core and each of the two workers half of
them, so this measures the cost or gain of the worker machinery, not more hardware. With
two or more GPUs visible it compares `--device cuda:0` with `--devices all`. Outputs of the
two runs are compared bitwise. The result replaces the `workers` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from cli_common import add_run_arguments, publish
from machine import environment
from report import render_workers
from workload import write_workload

from fastesm_extract.demo import build_demo_checkpoint


def timed_cli(folder: Path, out: Path, checkpoint: Path, *device_args: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [
        str(Path(sys.executable).parent / "fastesm-extract"),
        "extract",
        str(folder),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--quiet",
        *device_args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*_ESM.pt"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, defaults="4 files x 500 records, 2 repeats")
    args = parser.parse_args()
    files, records, repeats = args.files or 4, args.records or 500, args.repeats or 2

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        variants = {
            "1 process (cuda:0)": ["--device", "cuda:0"],
            f"{gpus} workers (--devices all)": ["--devices", "all"],
        }
    else:
        variants = {
            "1 process (--device cpu)": ["--device", "cpu"],
            "2 workers (--devices cpu,cpu)": ["--devices", "cpu,cpu"],
        }
    scratch = Path(tempfile.mkdtemp(prefix="fastesm-bench-workers-"))
    try:
        workload = write_workload(scratch / "fasta", files, records, seed=args.seed)
        checkpoint = build_demo_checkpoint(scratch / "checkpoint")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, device_args in variants.items():  # interleaved
                out = scratch / name.split()[0]
                times[name].append(
                    timed_cli(workload.files[0].parent, out, checkpoint, *device_args)
                )
        first, second = (outputs(scratch / name.split()[0]) for name in variants)
        identical = first == second and len(first) == files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    settings = (
        f"{files} files x {records:,} proteins (lengths 99-166), demo ESM2 "
        f"6 x 320 random weights, best of {repeats} interleaved runs, whole CLI "
        "runs including process start and model loading"
    )
    record = {
        "environment": environment(torch.device("cuda:0") if gpus >= 2 else None),
        "settings": settings,
        "records": files * records,
        "times": times,
        "identical": identical,
    }
    publish(render_workers(record), "workers", args)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
