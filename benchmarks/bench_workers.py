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
from bench_extract import REPO_ROOT, header, update_markdown, write_workload

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
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    args = parser.parse_args()

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
        workload = write_workload(scratch / "fasta", args.files, args.records, seed=0)
        checkpoint = build_demo_checkpoint(scratch / "checkpoint")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, device_args in variants.items():  # interleaved
                out = scratch / name.split()[0]
                times[name].append(
                    timed_cli(workload.files[0].parent, out, checkpoint, *device_args)
                )
        first, second = (outputs(scratch / name.split()[0]) for name in variants)
        identical = first == second and len(first) == args.files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    device = torch.device("cuda:0") if gpus >= 2 else None
    settings = (
        f"{args.files} files x {args.records:,} proteins (lengths 99-166), demo ESM2 "
        f"6 x 320 random weights, best of {args.repeats} interleaved runs, whole CLI "
        "runs including process start and model loading"
    )
    lines = header("Workers: one process vs one worker process per device", device, settings)
    lines += ["| variant | best s | records/s | runs (s) |", "|---|---:|---:|---|"]
    for name, runs in times.items():
        best = min(runs)
        shown = ", ".join(f"{run:.2f}" for run in runs)
        lines.append(f"| {name} | {best:.2f} | {args.files * args.records / best:,.0f} | {shown} |")
    lines += ["", f"- Outputs bitwise identical between the two: {'yes' if identical else 'NO'}."]
    print("\n".join(lines))
    update_markdown(args.output, "workers", lines)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
