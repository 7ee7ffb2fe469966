"""Measuring: interleaved timed runs, the CPU share other processes took, output agreement.

Variants run `repeats` times, interleaved, their order rotated each repeat so that drift and
order effects fall on every variant alike. Before each run: a garbage collection, `os.sync()`
(the previous run's dirty pages must not be written back during this one) and, on a shared
machine, a wait (up to 2 minutes) for other processes to leave the CPU; a run during which they
still took >= 5% of it is marked `*` and left out of best and median when others exist.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from workload import Workload, write_workload

CORES = os.cpu_count() or 1
QUIET_LOAD = 0.05  # a run during which other processes used >= 5% of all cores is marked
QUIET_MAX_WAIT = 120.0  # seconds to wait for other processes before a run, then run anyway

log = logging.getLogger("benchmarks")


class Deadline:
    """Seconds left before a wall-clock limit, so a long run ends with a partial report."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def foreign_cpu_seconds() -> float | None:
    """CPU seconds used so far by the whole machine minus this process (Linux; else None).

    Other processes on a shared machine (a test suite, a build) skew timings by far more
    than the differences measured here, so every run records how much of the CPU they took.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy - own.user - own.system


def wait_for_quiet(max_wait: float = QUIET_MAX_WAIT, probe: float = 0.5) -> None:
    """Wait (at most `max_wait` s) until other processes use under QUIET_LOAD of the CPU."""
    deadline = time.monotonic() + max_wait
    announced = False
    while True:
        before = foreign_cpu_seconds()
        time.sleep(probe)
        after = foreign_cpu_seconds()
        if before is None or after is None:
            return
        load = (after - before) / (probe * CORES)
        if load < QUIET_LOAD or time.monotonic() > deadline:
            return
        if not announced:
            log.info("  waiting for other processes to leave the CPU (%.0f%% busy)", 100 * load)
            announced = True


@dataclass
class Timing:
    """Every run of one variant: wall seconds, the CPU share other processes took, this
    process's CPU seconds, peak device bytes and a mode's extra figure (e.g. device seconds).

    `best` and `median` use the quiet runs (others under QUIET_LOAD of the machine) when
    there are any; the noisy ones are still listed, marked with `*`.
    """

    name: str
    runs: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # per run: others' share of all cores
    cpu: list[float] = field(default_factory=list)  # per run: this process's CPU seconds
    peak: list[int] = field(default_factory=list)  # per run: max CUDA bytes allocated
    extra: list[float] = field(default_factory=list)  # per run: device seconds, say

    @property
    def counted(self) -> list[float]:
        quiet = [run for run, load in zip(self.runs, self.loads) if load < QUIET_LOAD]
        return quiet or self.runs

    @property
    def best(self) -> float:
        return min(self.counted)

    @property
    def best_index(self) -> int:
        return self.runs.index(self.best)

    @property
    def median(self) -> float:
        return statistics.median(self.counted)

    @property
    def best_extra(self) -> float:
        return self.extra[self.best_index]

    def runs_text(self) -> str:
        marks = ["*" if load >= QUIET_LOAD else "" for load in self.loads]
        runs = ", ".join(f"{run:.3f}{mark}" for run, mark in zip(self.runs, marks))
        counted = self.counted
        return f"{runs} (median {self.median:.3f})" if len(counted) > 2 else runs


def timed(
    timing: Timing,
    action: Callable[[], object],
    device: torch.device,
    extra: Callable[[], float] | None = None,
    quiet_wait: float = QUIET_MAX_WAIT,
) -> None:
    """One run of `action` appended to `timing`; the device is synchronized before the clock
    stops."""
    if quiet_wait > 0:
        wait_for_quiet(quiet_wait)
    gc.collect()
    os.sync()  # the previous run's dirty pages must not be written back during this one
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    others = foreign_cpu_seconds()
    cpu, started = time.process_time(), time.perf_counter()
    action()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    timing.cpu.append(time.process_time() - cpu)
    after = foreign_cpu_seconds()
    timing.runs.append(seconds)
    timing.loads.append(
        0.0 if others is None or after is None else (after - others) / (seconds * CORES)
    )
    timing.peak.append(torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0)
    if extra is not None:
        timing.extra.append(extra())


@dataclass(frozen=True)
class Agreement:
    records: int
    max_abs_diff: float
    proteins_equal: bool
    error: str | None = None  # why ours' files could not be compared, if so


def compare_outputs(workload: Workload, ours_dir: Path, baseline_dir: Path) -> Agreement:
    """Ours' files load with weights_only=True and match the baseline's, record by record."""
    worst, equal, count = 0.0, True, 0
    for fasta in workload.files:
        name = f"{fasta.stem}_ESM.pt"
        ours = torch.load(ours_dir / name, map_location="cpu", weights_only=True)
        theirs = torch.load(baseline_dir / name, map_location="cpu", weights_only=True)
        problem = None
        if set(ours) != {"proteins", "data"}:
            problem = f"{name}: ours has keys {sorted(ours)}"
        elif len(ours["data"]) != len(theirs["data"]):
            problem = f"{name}: {len(ours['data'])} != {len(theirs['data'])} embeddings"
        elif not all(t.dtype == torch.float32 and t.dim() == 1 for t in ours["data"]):
            problem = f"{name}: ours' embeddings are not 1-D float32"
        if problem:
            return Agreement(count, float("nan"), False, problem)
        equal &= ours["proteins"] == theirs["proteins"]
        diff = (torch.stack(ours["data"]) - torch.stack(theirs["data"])).abs().max()
        worst = max(worst, float(diff))
        count += len(ours["data"])
    return Agreement(count, worst, equal)


def measure(
    workload: Workload,
    scratch: Path,
    repeats: int,
    variants: dict[str, Callable[[Path], object]],
    device: torch.device,
    extra: Callable[[], float] | None = None,
    reset: Callable[[], None] = lambda: None,
    quiet_wait: float = QUIET_MAX_WAIT,
    deadline: Deadline | None = None,
) -> tuple[dict[str, Timing], Agreement]:
    """Run each variant `repeats` times, interleaved, the order rotated each repeat; check the
    first outputs of ours and the baseline agree. With a `deadline`, a repeat that would not
    end before it is not started (at least one always runs)."""
    timings = {name: Timing(name) for name in variants}
    names = list(variants)
    agreement: Agreement | None = None
    repeat_seconds = 0.0
    for repeat in range(repeats):
        if repeat and deadline is not None and deadline.left() < 1.2 * repeat_seconds:
            log.warning("  stopping after %d repeats: the deadline is near", repeat)
            break
        started = time.monotonic()
        dirs = {}
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            dirs[name] = out = scratch / f"{name}-{repeat}"
            reset()
            timed(timings[name], lambda a=variants[name], o=out: a(o), device, extra, quiet_wait)
            timing = timings[name]
            log.info(
                "  %-8s run %d: %.3f s (other processes: %.0f%% of the CPU)",
                name,
                repeat + 1,
                timing.runs[-1],
                100 * timing.loads[-1],
            )
        if agreement is None:
            agreement = compare_outputs(workload, dirs["ours"], dirs["baseline"])
        for folder in dirs.values():
            shutil.rmtree(folder, ignore_errors=True)
        repeat_seconds = time.monotonic() - started
    assert agreement is not None
    return timings, agreement


def warm_up(
    folder: Path, variants: dict[str, Callable[[Workload, Path], object]], seed: int
) -> None:
    """One small file through every variant: lazy imports, allocator, kernels."""
    small = write_workload(folder / "warmup", 1, 200, seed + 1)
    for name, action in variants.items():
        out = folder / f"warmup-{name}"
        shutil.rmtree(out, ignore_errors=True)
        action(small, out)
        shutil.rmtree(out)
