"""--compile on the CPU: cold vs warm start, each in a fresh process.

Per architecture, three fresh processes run the same workload with the same tiny model:
eager; compiled against an empty cache (cold: every graph compiled); compiled again against
that cache (warm: graphs loaded). Each reports the seconds until its graphs were ready (first
call of each graph, compile or load included), the whole run, and the process's wall time.
On a GPU, gpu_check's compile step measures the same at FastESM2_650's shape.

    .venv/bin/python benchmarks/bench_compile.py            # writes the compile-cpu section
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from baselines import ModelShape
from cli_common import publish
from compile_runs import ARCHITECTURES, graph_keys, time_fresh_start
from machine import REPO_ROOT, environment
from markdown import header
from workload import write_workload

TINY = ModelShape(layers=2, hidden=32, heads=4, intermediate=128)  # tests/conftest.py's


def measure(arch: str, scratch: Path, records: int, budget: int, seed: int) -> dict:
    workload = write_workload(scratch / "fasta", 1, records, seed)
    cache = scratch / f"cache-{arch}"
    shutil.rmtree(cache, ignore_errors=True)
    spec = {
        "arch": arch,
        "shape": asdict(TINY),
        "device": "cpu",
        "dtype": "float32",
        "forward": {"cache_dir": str(cache)},
        "files": [str(f) for f in workload.files],
        "records_per_file": records,
        "budget": budget,
    }
    result = {"graphs_expected": sorted(graph_keys(workload, budget, False))}
    for name, compiled in (("eager", False), ("cold", True), ("warm", True)):
        print(f"{arch}: {name} ...", flush=True)
        run = spec | {"compiled": compiled, "scratch": str(scratch / f"{arch}-{name}")}
        result[name] = time_fresh_start(run, timeout=1800)
    return result


def render(results: dict, env: dict, settings: str) -> list[str]:
    lines = header("(e) CPU: --compile cold vs warm start, tiny model", env, settings)
    lines += [
        "| architecture | run | graphs ready s | run s (graphs included) | process s |",
        "|---|---|---:|---:|---:|",
    ]
    for arch, result in results.items():
        for name in ("eager", "cold", "warm"):
            r = result[name]
            ready = f"{r['graphs_ready_s']:.1f}" if name != "eager" else "-"
            lines.append(f"| {arch} | {name} | {ready} | {r['run_s']:.1f} | {r['process_s']:.1f} |")
    lines.append("")
    for arch, result in results.items():
        cold, warm = result["cold"], result["warm"]
        per_graph = ", ".join(f"{k} {v:.1f} s" for k, v in cold["first_calls"].items())
        lines.append(
            f"- {arch}: {len(cold['first_calls'])} graphs ({per_graph} cold); warm start "
            f"{warm['graphs_ready_s']:.1f} s vs cold {cold['graphs_ready_s']:.1f} s "
            f"({cold['graphs_ready_s'] / max(warm['graphs_ready_s'], 1e-9):.1f}x); compiled "
            f"throughout: {cold['compiled'] and warm['compiled']}."
        )
    lines += [
        "",
        "- Graphs ready = the first call of every graph (compile or cache load, dynamo's "
        "tracing and one batch's compute included). A tiny model on a shared 2-core CPU: these "
        "show what the cache saves, not GPU figures (gpu_check's compile step).",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--toks-per-batch", type=int, default=2048)
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch --output")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as temp:
        for arch in args.archs.split(","):
            results[arch] = measure(arch, Path(temp), args.records, args.toks_per_batch, args.seed)
    settings = (
        f"{args.records} proteins (lengths 99-166), toks_per_batch {args.toks_per_batch}, "
        f"model {TINY.layers} layers x {TINY.hidden} float32, Inductor, width buckets; each "
        "run a fresh process (OMP_NUM_THREADS as set)"
    )
    publish(render(results, env, settings), "compile-cpu", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
