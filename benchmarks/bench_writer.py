"""The `_ESM.pt` writer side by side: ours, the writer it replaced, a straightforward one.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_writer.py [--files 3] [--records 10000] [--repeats 5]

Each variant writes the same files (IDs like VirNucPro's, rows of one (records, 1280) float32
block) into a temporary folder, in one process, the variants interleaved and their order
rotated each repeat, `os.sync()` and a garbage collection before each run:

- ours: `save_embeddings_atomic` (one-pass pickle, atomic, fsync);
- previous: the writer before issue 29 (torch.save pickling each row view, garbage
  collection paused, the same atomic write and fsync);
- straightforward: `torch.save({'proteins': ids, 'data': [row.clone() for row in rows]})`.

Prints wall and CPU seconds per variant (best and median of the runs) and the ratios; the
files of ours and previous must load (`weights_only=True`) to the same IDs and tensors.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import foreign_cpu_seconds
from machine import environment, machine_line

from fastesm_extract.disk import store
from fastesm_extract.disk.store import atomic_write, embeddings_from_block, save_embeddings_atomic

HIDDEN = 1280


def previous_writer(path: Path, proteins: list[str], data: list[torch.Tensor]) -> None:
    """`save_embeddings_atomic` before issue 29: torch.save pickles the row views one by one."""
    content = {"proteins": proteins, "data": data}
    with store._garbage_collection_paused():
        atomic_write(path, lambda handle: torch.save(content, handle))


def straightforward_writer(path: Path, proteins: list[str], data: list[torch.Tensor]) -> None:
    torch.save({"proteins": proteins, "data": [row.clone() for row in data]}, path)


WRITERS = {
    "straightforward": straightforward_writer,
    "previous": previous_writer,
    "ours": save_embeddings_atomic,
}


def timed_run(writer, folder: Path, files: list[tuple[list[str], torch.Tensor]]) -> tuple:
    """(wall s, CPU s of this process, CPU s other processes took) writing every file."""
    os.sync()
    gc.collect()
    foreign = foreign_cpu_seconds()
    cpu, wall = time.process_time(), time.perf_counter()
    for index, (ids, block) in enumerate(files):
        writer(folder / f"f{index}_ESM.pt", ids, embeddings_from_block(block))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = foreign_cpu_seconds()
    return wall, cpu, (after - foreign) if foreign is not None and after is not None else None


def same_content(first: Path, second: Path) -> bool:
    one, two = (torch.load(path, weights_only=True) for path in (first, second))
    return one["proteins"] == two["proteins"] and all(
        torch.equal(a, b) for a, b in zip(one["data"], two["data"], strict=True)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    files = [
        (
            [f"read_{file}_{i}_chunk_1R2" for i in range(args.records)],
            torch.randn(args.records, HIDDEN, generator=generator),
        )
        for file in range(args.files)
    ]
    print(machine_line(environment()), f"| nproc {os.cpu_count()}", sep="")
    print(f"{args.files} files x {args.records} records x {HIDDEN} dims, {args.repeats} repeats")
    runs: dict[str, list[tuple]] = {name: [] for name in WRITERS}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for name in WRITERS:
            (root / name).mkdir()
        names = list(WRITERS)
        for repeat in range(args.repeats + 1):  # the first repeat warms up
            for name in names[repeat % 3 :] + names[: repeat % 3]:
                run = timed_run(WRITERS[name], root / name, files)
                if repeat:
                    runs[name].append(run)
            if not same_content(root / "ours" / "f0_ESM.pt", root / "previous" / "f0_ESM.pt"):
                print("ours and previous differ", file=sys.stderr)
                return 1
    best = {}
    for name, measured in runs.items():
        walls, cpus = [run[0] for run in measured], [run[1] for run in measured]
        foreign = [f"{run[2]:.1f}" if run[2] is not None else "?" for run in measured]
        best[name] = (min(walls), min(cpus))
        print(
            f"{name:>15}: wall best {min(walls):.3f} s median {statistics.median(walls):.3f} s;"
            f" CPU best {min(cpus):.3f} s; runs {', '.join(f'{w:.3f}' for w in walls)};"
            f" other processes' CPU s {', '.join(foreign)}"
        )
    for other in ("straightforward", "previous"):
        print(
            f"ours vs {other}: wall {best[other][0] / best['ours'][0]:.2f}x,"
            f" CPU {best[other][1] / best['ours'][1]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
