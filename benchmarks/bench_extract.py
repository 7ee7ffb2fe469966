"""Side-by-side benchmark: fastesm-extract ("ours") against a straightforward extractor.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_extract.py [--mode host|simulated|cpu-model|gpu|all]
                                                 [--files N] [--records N] [--repeats N]

Every mode runs in one process on the same synthetic VirNucPro-like workload: FASTA files of
`--records` proteins (default 10,000), lengths uniform in 99-166, the 20 standard amino
acids, one-line sequences, IDs like `read_1_42_chunk_1R2`, generated from a fixed seed into a
temporary folder. OURS is `fastesm_extract.extract_files` with a preloaded model. BASELINE is
written below: a Python-loop FASTA parser, Hugging Face `EsmTokenizer` per batch, model
forward, per-record `hidden[i, 1:n+1].mean(0).cpu()`, reordering to FASTA order and one
`torch.save` after each file, all serial. Both use the same model and the same batches
(`fastesm_extract.batching.make_batches`), their outputs are compared record by record, and
OURS' files are loaded with `weights_only=True`.

Modes (issue 3):
  host       stand-in model (hidden 1280) whose forward returns a fixed tensor, no compute,
             one torch thread: records/s. Target: ours >= 10,000 records/s and >= 5x baseline.
  simulated  the same stand-in, its forward first sleeps 2 us per padded token (releasing the
             GIL, like waiting on a GPU): end-to-end time / simulated device time. Target 1.25.
  cpu-model  a small real ESM2 (6 layers x 320, random weights) on the CPU: end-to-end time /
             floor, the floor being the model calls alone on the same pre-tokenized batches.
             Target 1.03. Defaults to 2 files x 1,000 records.
  gpu        only when CUDA is available: a FastESM2_650-shaped random model (33 x 1280,
             20 heads, fp16, SDPA) at toks_per_batch 2048/4096/8192: records/s, tokens/s,
             model FLOP utilisation, peak memory, against baseline and floor. Target 1.10 at 2048.
  all        all of the above (gpu skipped without CUDA).

Each measured mode replaces its own section of BENCHMARKS.md (`--output`; `--no-write` only
prints). Times are the best of `--repeats` runs; every run is listed. Variants are interleaved,
their order rotated each repeat; before each run the benchmark syncs the disks, collects
garbage, and waits (up to 2 minutes) for other processes to leave the CPU; a run during which
they still took >= 5% of it is marked `*` and left out of best and median when others exist.
`--profile` instead runs OURS' stages serially on one host-mode file under cProfile and
prints the hotspots.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import logging
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import EsmTokenizer

import fastesm_extract
from fastesm_extract import LoadedModel, extract_files, load_model, prepare_model
from fastesm_extract.batching import make_batches
from fastesm_extract.demo import ESM_VOCAB, build_demo_checkpoint, esm2_config

REPO_ROOT = Path(__file__).resolve().parent.parent
AMINO_ACIDS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
MIN_LENGTH, MAX_LENGTH = 99, 166  # residues, uniform, as VirNucPro's 300/500 bp chunk proteins
SPECIALS = 2  # <cls> and <eos>
TRUNCATION = 1024  # residues; longer sequences are cut (none are in this workload)
HIDDEN = 1280  # FastESM2_650
SLEEP_PER_TOKEN = 2e-6  # simulated device: seconds per padded token
GPU_BUDGETS = (2048, 4096, 8192)
# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets.
PEAK_TFLOPS = (("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0))
CORES = os.cpu_count() or 1
QUIET_LOAD = 0.05  # a run during which other processes used >= 5% of all cores is marked
QUIET_MAX_WAIT = 120.0  # seconds to wait for other processes before a run, then run anyway
TARGETS = {
    "host_rate": 10_000.0,
    "host_speedup": 5.0,
    "simulated": 1.25,
    "cpu-model": 1.03,
    "gpu": 1.10,
}

log = logging.getLogger("bench_extract")


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """Synthetic FASTA files and, for the floor and FLOP counts, their parsed sequences."""

    files: list[Path]
    records_per_file: int
    seed: int

    @property
    def n_records(self) -> int:
        return len(self.files) * self.records_per_file


def write_workload(folder: Path, n_files: int, n_records: int, seed: int) -> Workload:
    """`output_1.fa` ... `output_N.fa`, each `n_records` proteins, deterministic in `seed`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(1, n_files + 1):
        rng = np.random.default_rng([seed, number])
        lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n_records)
        residues = AMINO_ACIDS[rng.integers(0, len(AMINO_ACIDS), size=int(lengths.sum()))]
        text = residues.tobytes()
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends[:-1]]
        chunks = []
        for index, (start, end) in enumerate(zip(starts, ends)):
            strand = "F" if index % 6 < 3 else "R"
            header = f">read_{number}_{index // 6}_chunk_1{strand}{index % 3 + 1}\n"
            chunks.append(header.encode() + text[start:end] + b"\n")
        path = folder / f"output_{number}.fa"
        path.write_bytes(b"".join(chunks))
        files.append(path)
    return Workload(files, n_records, seed)


def write_tokenizer(folder: Path) -> EsmTokenizer:
    """The ESM2 tokenizer (the vocabulary FastESM2_650 and the demo checkpoint share)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(ESM_VOCAB) + "\n")
    return EsmTokenizer(vocab_file=str(vocab))


# --------------------------------------------------------------------------- stand-in model


@dataclass
class StandInConfig:
    """What `fastesm_extract.prepare_model` reads from a model's config."""

    hidden_size: int = HIDDEN
    _attn_implementation: str = "sdpa"
    name_or_path: str = "stand-in"


@dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor


class StandInModel(torch.nn.Module):
    """Forward returns a view of one preallocated, contiguous random tensor: no compute.

    With `sleep_per_token`, forward first sleeps that long per padded token (`time.sleep`
    releases the GIL, as waiting on a GPU does); `device_seconds` sums the requested sleeps.
    """

    def __init__(self, max_tokens: int, sleep_per_token: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.config = StandInConfig()
        self.sleep_per_token = sleep_per_token
        self.device_seconds = 0.0
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        generator = torch.Generator().manual_seed(seed)
        values = torch.randn(max_tokens * HIDDEN, generator=generator)
        self.register_buffer("values", values, persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ModelOutput:
        rows, width = input_ids.shape
        if self.sleep_per_token:
            seconds = rows * width * self.sleep_per_token
            time.sleep(seconds)
            self.device_seconds += seconds
        hidden = self.values[: rows * width * HIDDEN].view(rows, width, HIDDEN)
        return ModelOutput(hidden)


# --------------------------------------------------------------------------- baseline


def parse_fasta_simple(path: Path) -> list[tuple[str, str]]:
    """(ID, sequence) pairs: ID up to the first whitespace, sequence upper-cased, no '*'."""
    records: list[tuple[str, str]] = []
    label: str | None = None
    parts: list[str] = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                if label is not None:
                    records.append((label, "".join(parts).upper().removesuffix("*")))
                label, parts = line[1:].split()[0], []
            elif line:
                parts.append(line)
    if label is not None:
        records.append((label, "".join(parts).upper().removesuffix("*")))
    return records


@torch.inference_mode()
def baseline_extract_file(
    fasta: Path,
    output: Path,
    model: torch.nn.Module,
    tokenizer: EsmTokenizer,
    device: torch.device,
    toks_per_batch: int,
) -> None:
    """The straightforward extractor: everything serial, one record at a time."""
    records = parse_fasta_simple(fasta)
    sequences = [sequence[:TRUNCATION] for _, sequence in records]
    batches = make_batches([len(s) + SPECIALS for s in sequences], toks_per_batch)
    pooled: list[torch.Tensor | None] = [None] * len(records)
    for rows in batches:
        encoded = tokenizer([sequences[r] for r in rows], padding=True, return_tensors="pt")
        hidden = model(
            input_ids=encoded["input_ids"].to(device),
            attention_mask=encoded["attention_mask"].to(device),
        ).last_hidden_state
        for position, row in enumerate(rows):
            length = len(sequences[row])
            # mean(dtype=float32): accumulates in float32 also for a float16 model
            pooled[row] = hidden[position, 1 : length + 1].mean(0, dtype=torch.float32).cpu()
    torch.save({"proteins": [label for label, _ in records], "data": pooled}, output)


def run_baseline(
    workload: Workload,
    out_dir: Path,
    model: torch.nn.Module,
    tokenizer: EsmTokenizer,
    device: torch.device,
    toks_per_batch: int,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for fasta in workload.files:
        output = out_dir / f"{fasta.stem}_ESM.pt"
        baseline_extract_file(fasta, output, model, tokenizer, device, toks_per_batch)


def run_ours(workload: Workload, out_dir: Path, loaded: LoadedModel, toks_per_batch: int) -> None:
    summary = extract_files(
        workload.files,
        out_dir,
        model=loaded,
        toks_per_batch=toks_per_batch,
        show_progress=False,
    )
    if not summary.ok or summary.records_embedded != workload.n_records:
        raise RuntimeError(f"ours failed: {summary}")


# --------------------------------------------------------------------------- floor


@dataclass(frozen=True)
class BatchPlan:
    """The batches every variant runs, pre-tokenized, with their token counts."""

    inputs: list[tuple[torch.Tensor, torch.Tensor]]  # (input_ids, attention_mask) per batch
    shapes: list[tuple[int, int]]  # (rows, padded width) per batch
    real_tokens: int  # tokens including <cls>/<eos>, excluding padding

    @property
    def padded_tokens(self) -> int:
        return sum(rows * width for rows, width in self.shapes)


def plan_batches(
    workload: Workload, tokenizer: EsmTokenizer, toks_per_batch: int, device: torch.device
) -> BatchPlan:
    inputs, shapes, real = [], [], 0
    for fasta in workload.files:
        sequences = [sequence[:TRUNCATION] for _, sequence in parse_fasta_simple(fasta)]
        real += sum(len(s) + SPECIALS for s in sequences)
        for rows in make_batches([len(s) + SPECIALS for s in sequences], toks_per_batch):
            encoded = tokenizer([sequences[r] for r in rows], padding=True, return_tensors="pt")
            ids = encoded["input_ids"].to(device)
            inputs.append((ids, encoded["attention_mask"].to(device)))
            shapes.append((int(ids.shape[0]), int(ids.shape[1])))
    return BatchPlan(inputs, shapes, real)


@torch.inference_mode()
def run_floor(model: torch.nn.Module, plan: BatchPlan, device: torch.device) -> None:
    """The model calls alone, on inputs already tokenized and on the device."""
    for input_ids, attention_mask in plan.inputs:
        model(input_ids=input_ids, attention_mask=attention_mask)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- measuring


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
    """Wall-clock seconds of each run of one variant, with the CPU share other processes took.

    `best` and `median` use the quiet runs (others under QUIET_LOAD of the machine) when
    there are any; the noisy ones are still listed, marked with `*`.
    """

    name: str
    runs: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # per run: others' share of all cores
    extra: list[float] = field(default_factory=list)  # per run: device seconds or peak bytes

    @property
    def counted(self) -> list[float]:
        quiet = [run for run, load in zip(self.runs, self.loads) if load < QUIET_LOAD]
        return quiet or self.runs

    @property
    def best(self) -> float:
        return min(self.counted)

    @property
    def median(self) -> float:
        return statistics.median(self.counted)

    @property
    def best_extra(self) -> float:
        return self.extra[self.runs.index(self.best)]

    def runs_text(self) -> str:
        marks = ["*" if load >= QUIET_LOAD else "" for load in self.loads]
        runs = ", ".join(f"{run:.3f}{mark}" for run, mark in zip(self.runs, marks))
        counted = self.counted
        return f"{runs} (median {self.median:.3f})" if len(counted) > 2 else runs


def timed(
    timing: Timing,
    action: Callable[[], None],
    device: torch.device,
    extra: Callable[[], float] | None = None,
) -> None:
    wait_for_quiet()
    gc.collect()
    os.sync()  # the previous run's dirty pages must not be written back during this one
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    others = foreign_cpu_seconds()
    started = time.perf_counter()
    action()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    after = foreign_cpu_seconds()
    timing.runs.append(seconds)
    timing.loads.append(
        0.0 if others is None or after is None else (after - others) / (seconds * CORES)
    )
    if extra is not None:
        timing.extra.append(extra())


@dataclass(frozen=True)
class Agreement:
    records: int
    max_abs_diff: float
    proteins_equal: bool


def compare_outputs(workload: Workload, ours_dir: Path, baseline_dir: Path) -> Agreement:
    """Ours' files load with weights_only=True and match the baseline's, record by record."""
    worst, equal, count = 0.0, True, 0
    for fasta in workload.files:
        name = f"{fasta.stem}_ESM.pt"
        ours = torch.load(ours_dir / name, map_location="cpu", weights_only=True)
        theirs = torch.load(baseline_dir / name, map_location="cpu", weights_only=True)
        if set(ours) != {"proteins", "data"}:
            raise RuntimeError(f"{name}: ours has keys {sorted(ours)}")
        equal &= ours["proteins"] == theirs["proteins"]
        if len(ours["data"]) != len(theirs["data"]):
            raise RuntimeError(f"{name}: {len(ours['data'])} != {len(theirs['data'])} embeddings")
        if not all(t.dtype == torch.float32 and t.dim() == 1 for t in ours["data"]):
            raise RuntimeError(f"{name}: ours' embeddings are not 1-D float32")
        diff = (torch.stack(ours["data"]) - torch.stack(theirs["data"])).abs().max()
        worst = max(worst, float(diff))
        count += len(ours["data"])
    return Agreement(count, worst, equal)


def measure(
    workload: Workload,
    scratch: Path,
    repeats: int,
    variants: dict[str, Callable[[Path], None]],
    device: torch.device,
    extra: Callable[[], float] | None = None,
    reset: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Timing], Agreement]:
    """Run each variant `repeats` times, interleaved, the order rotated each repeat so that
    drift and order effects fall on every variant alike; check the first outputs agree."""
    timings = {name: Timing(name) for name in variants}
    names = list(variants)
    agreement: Agreement | None = None
    for repeat in range(repeats):
        dirs = {}
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            action = variants[name]
            dirs[name] = out = scratch / f"{name}-{repeat}"
            reset()
            timed(timings[name], functools.partial(action, out), device, extra)
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
    assert agreement is not None
    return timings, agreement


def warm_up(folder: Path, variants: dict[str, Callable[[Workload, Path], None]], seed: int) -> None:
    """One small file through every variant: lazy imports, allocator, kernels."""
    small = write_workload(folder / "warmup", 1, 200, seed + 1)
    for name, action in variants.items():
        out = folder / f"warmup-{name}"
        shutil.rmtree(out, ignore_errors=True)
        action(small, out)
        shutil.rmtree(out)


# --------------------------------------------------------------------------- report


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    """The commit benchmarked (first call: `main` makes it at start, when src/ is imported),
    and whether src/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "git commit unknown"
    return f"git {commit}" + (" + uncommitted src changes" if dirty else "")


def machine_line(device: torch.device | None = None) -> str:
    parts = [
        f"CPU {cpu_model_name()}, {os.cpu_count()} logical cores",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
        f"Python {platform.python_version()}",
        f"fastesm-extract {fastesm_extract.__version__} ({source_version()})",
    ]
    if device is not None and device.type == "cuda":
        parts.insert(1, f"GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})")
    return "; ".join(parts)


def header(title: str, device: torch.device | None, settings: str) -> list[str]:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"### {title}",
        "",
        f"- Measured: {now}",
        f"- Machine: {machine_line(device)}",
        f"- Settings: {settings}",
        "",
    ]


def yes_no(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def agreement_line(agreement: Agreement) -> str:
    return (
        f"- Outputs: ours' files load with `weights_only=True`; {agreement.records:,} records, "
        f"IDs {'identical' if agreement.proteins_equal else 'DIFFERENT'} to the baseline's, "
        f"max abs difference of embeddings {agreement.max_abs_diff:.2e}."
    )


def noise_note(timings: dict[str, Timing]) -> list[str]:
    """A line explaining the `*` marks, when a run has one."""
    if all(load < QUIET_LOAD for t in timings.values() for load in t.loads):
        return []
    return [
        f"- `*`: other processes used >= {100 * QUIET_LOAD:.0f}% of the CPU during that run "
        "(shared machine); best and median use the unmarked runs when there are any."
    ]


def update_markdown(path: Path, mode: str, lines: list[str]) -> None:
    """Replace the section between this mode's markers (or append it)."""
    begin, end = f"<!-- BEGIN bench:{mode} -->", f"<!-- END bench:{mode} -->"
    section = "\n".join([begin, *lines, end])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


# --------------------------------------------------------------------------- modes


@dataclass(frozen=True)
class Options:
    files: int
    records: int
    repeats: int
    toks_per_batch: int
    seed: int
    scratch: Path


def workload_text(options: Options) -> str:
    return (
        f"{options.files} files x {options.records:,} proteins, lengths uniform "
        f"{MIN_LENGTH}-{MAX_LENGTH}, 20 amino acids, seed {options.seed}; best of "
        f"{options.repeats} interleaved runs, order rotated each repeat"
    )


def stand_in_variants(
    options: Options, model: StandInModel, tokenizer: EsmTokenizer, toks_per_batch: int
) -> dict[str, Callable[[Workload, Path], None]]:
    loaded = prepare_model(model, tokenizer)
    cpu = torch.device("cpu")
    return {
        "baseline": lambda w, out: run_baseline(w, out, model, tokenizer, cpu, toks_per_batch),
        "ours": lambda w, out: run_ours(w, out, loaded, toks_per_batch),
    }


def bind(
    variants: dict[str, Callable[[Workload, Path], None]], workload: Workload
) -> dict[str, Callable[[Path], None]]:
    return {name: (lambda out, a=action: a(workload, out)) for name, action in variants.items()}


def mode_host(options: Options, tokenizer: EsmTokenizer) -> list[str]:
    torch.set_num_threads(1)
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    model = StandInModel(max(options.toks_per_batch, TRUNCATION + SPECIALS), seed=options.seed)
    variants = stand_in_variants(options, model, tokenizer, options.toks_per_batch)
    warm_up(options.scratch, variants, options.seed)
    cpu = torch.device("cpu")
    timings, agreement = measure(
        workload, options.scratch, options.repeats, bind(variants, workload), cpu
    )
    base, ours = timings["baseline"], timings["ours"]
    rate = {name: workload.n_records / t.best for name, t in timings.items()}
    speedup = rate["ours"] / rate["baseline"]
    met = rate["ours"] >= TARGETS["host_rate"] and speedup >= TARGETS["host_speedup"]
    lines = header(
        "(a) Host side: stand-in model, no compute, one torch thread",
        None,
        f"{workload_text(options)}; toks_per_batch {options.toks_per_batch}; stand-in forward "
        f"returns a view of a fixed (b, l, {HIDDEN}) float32 tensor; torch threads 1",
    )
    lines += [
        "| variant | best s | records/s | us/record | vs baseline | runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, timing in ((b.name, b) for b in (base, ours)):
        lines.append(
            f"| {name} | {timing.best:.3f} | {rate[name]:,.0f} | "
            f"{1e6 / rate[name]:.1f} | {rate[name] / rate['baseline']:.2f}x | "
            f"{timing.runs_text()} |"
        )
    lines += [
        "",
        f"- Target: ours >= {TARGETS['host_rate']:,.0f} records/s and >= "
        f"{TARGETS['host_speedup']:.0f}x baseline: {rate['ours']:,.0f} records/s, "
        f"{speedup:.2f}x: met {yes_no(met)} (median runs: "
        f"{workload.n_records / ours.median:,.0f} records/s, {base.median / ours.median:.2f}x).",
        agreement_line(agreement),
        *noise_note(timings),
    ]
    return lines


def mode_simulated(options: Options, tokenizer: EsmTokenizer) -> list[str]:
    torch.set_num_threads(1)
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    model = StandInModel(
        max(options.toks_per_batch, TRUNCATION + SPECIALS), SLEEP_PER_TOKEN, seed=options.seed
    )
    variants = stand_in_variants(options, model, tokenizer, options.toks_per_batch)
    warm_up(options.scratch, variants, options.seed)

    def reset() -> None:
        model.device_seconds = 0.0

    timings, agreement = measure(
        workload,
        options.scratch,
        options.repeats,
        bind(variants, workload),
        torch.device("cpu"),
        extra=lambda: model.device_seconds,
        reset=reset,
    )
    ratio = {name: t.best / t.best_extra for name, t in timings.items()}
    met = ratio["ours"] <= TARGETS["simulated"]
    lines = header(
        "(b) Simulated device: stand-in sleeps 2 us per padded token",
        None,
        f"{workload_text(options)}; toks_per_batch {options.toks_per_batch}; forward sleeps "
        f"{SLEEP_PER_TOKEN * 1e6:.0f} us x padded tokens (GIL released) then returns a fixed "
        f"tensor; torch threads 1",
    )
    lines += [
        "| variant | best s | device s (sum of sleeps) | end-to-end / device | records/s "
        "| runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, timing in timings.items():
        lines.append(
            f"| {name} | {timing.best:.3f} | {timing.best_extra:.3f} | {ratio[name]:.3f}x | "
            f"{workload.n_records / timing.best:,.0f} | {timing.runs_text()} |"
        )
    lines += [
        "",
        f"- Target: ours <= {TARGETS['simulated']:.2f}x the simulated device time: "
        f"{ratio['ours']:.3f}x: met {yes_no(met)} (median run: "
        f"{timings['ours'].median / timings['ours'].best_extra:.3f}x).",
        agreement_line(agreement),
        *noise_note(timings),
    ]
    return lines


def mode_cpu_model(options: Options, tokenizer: EsmTokenizer) -> list[str]:
    torch.set_num_threads(os.cpu_count() or 1)
    threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    checkpoint = build_demo_checkpoint(options.scratch / "demo-checkpoint", seed=options.seed)
    loaded = load_model(str(checkpoint), device="cpu")
    model, model_tokenizer = loaded.model, loaded.tokenizer
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    plan = plan_batches(workload, model_tokenizer, options.toks_per_batch, cpu)
    variants: dict[str, Callable[[Workload, Path], None]] = {
        "baseline": lambda w, out: run_baseline(
            w, out, model, model_tokenizer, cpu, options.toks_per_batch
        ),
        "ours": lambda w, out: run_ours(w, out, loaded, options.toks_per_batch),
    }
    warm_up(options.scratch, variants, options.seed)
    bound = bind(variants, workload)
    bound["floor"] = lambda out: run_floor(model, plan, cpu)
    timings, agreement = measure(workload, options.scratch, options.repeats, bound, cpu)
    floor = timings["floor"].best
    met = timings["ours"].best / floor <= TARGETS["cpu-model"]
    config = model.config
    lines = header(
        "(c) CPU end-to-end: small real ESM2 (random weights) vs the pure forward time",
        None,
        f"{workload_text(options)}; toks_per_batch {options.toks_per_batch}; ESM2 "
        f"{config.num_hidden_layers} layers x {config.hidden_size}, "
        f"{config.num_attention_heads} heads, float32, SDPA; torch threads {threads}; floor = "
        f"model calls only on the same batches, pre-tokenized ({len(plan.shapes)} batches, "
        f"{plan.padded_tokens:,} padded tokens)",
    )
    lines += [
        "| variant | best s | records/s | vs floor | runs (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, timing in timings.items():
        lines.append(
            f"| {name} | {timing.best:.3f} | {workload.n_records / timing.best:,.0f} | "
            f"{timing.best / floor:.3f}x | {timing.runs_text()} |"
        )
    lines += [
        "",
        f"- Target: ours <= {TARGETS['cpu-model']:.2f}x the floor: "
        f"{timings['ours'].best / floor:.3f}x: met {yes_no(met)} (median runs: "
        f"{timings['ours'].median / timings['floor'].median:.3f}x).",
        agreement_line(agreement),
        *noise_note(timings),
    ]
    return lines


@dataclass(frozen=True)
class ModelShape:
    layers: int = 33
    hidden: int = 1280
    heads: int = 20
    intermediate: int = 5120


def build_esm(shape: ModelShape, device: torch.device, dtype: torch.dtype, seed: int):
    """A FastESM2_650-shaped transformers EsmModel with seeded random weights, SDPA."""
    from transformers import EsmModel

    config = esm2_config(shape.layers, shape.hidden, shape.heads, shape.intermediate)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with device:
        model = EsmModel(config, add_pooling_layer=False)
    return model.to(dtype).eval()


def flops(model: torch.nn.Module, shape: ModelShape, plan: BatchPlan) -> float:
    """Forward FLOPs over the padded batches: 2 x matmul parameters per token + attention.

    Matmul parameters exclude the embedding table (a lookup); attention adds
    QK^T and AV, 2 x 2 x width x hidden per token per layer.
    """
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    total = 0.0
    for rows, width in plan.shapes:
        total += 2.0 * dense * rows * width + 4.0 * shape.layers * shape.hidden * rows * width**2
    return total


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "given with --peak-tflops"
    if device.type != "cuda":
        return None, "unknown device"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS:
        if key in name:
            return value, f"{key} dense fp16 tensor peak, data sheet"
    return None, f"no assumed peak for {name}; pass --peak-tflops"


def mode_gpu(
    options: Options,
    tokenizer: EsmTokenizer,
    *,
    device: torch.device | None = None,
    shape: ModelShape = ModelShape(),
    budgets: Sequence[int] = GPU_BUDGETS,
    peak_override: float | None = None,
) -> list[str]:
    device = device or torch.device("cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = build_esm(shape, device, dtype, options.seed)
    loaded = prepare_model(model, tokenizer, model_id=f"random ESM2 {shape.layers}x{shape.hidden}")
    n_params = sum(p.numel() for p in model.parameters())
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    peak, peak_source = peak_tflops(device, peak_override)

    def peak_bytes() -> float:
        return float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else 0.0

    lines = header(
        "(d) GPU: FastESM2_650-shaped model, random weights",
        device,
        f"{workload_text(options)}; EsmModel {shape.layers} layers x {shape.hidden}, "
        f"{shape.heads} heads, intermediate {shape.intermediate}, rotary, "
        f"{n_params / 1e6:.1f}M parameters, {str(dtype).removeprefix('torch.')}, SDPA; "
        "MFU = forward FLOPs of the padded batches (2 x non-embedding parameters per token, "
        "plus 4 x layers x hidden x width per token for QK^T and AV) / time / peak "
        f"{peak if peak else 'n/a'} TFLOP/s ({peak_source}); tokens/s counts <cls>/<eos>, "
        "not padding; peak mem = torch.cuda.max_memory_allocated during the run",
    )
    lines += [
        "| toks_per_batch | variant | best s | records/s | tokens/s | MFU | peak mem GiB "
        "| vs floor | runs (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for budget in budgets:
        plan = plan_batches(workload, tokenizer, budget, device)
        variants: dict[str, Callable[[Workload, Path], None]] = {
            "baseline": lambda w, out, b=budget: run_baseline(w, out, model, tokenizer, device, b),
            "ours": lambda w, out, b=budget: run_ours(w, out, loaded, b),
        }
        warm_up(options.scratch, variants, options.seed)
        bound = bind(variants, workload)
        bound["floor"] = lambda out, p=plan: run_floor(model, p, device)
        run_floor(model, plan, device)  # warm the kernels of every batch shape
        timings, agreement = measure(
            workload, options.scratch, options.repeats, bound, device, extra=peak_bytes
        )
        work = flops(model, shape, plan)
        floor = timings["floor"].best
        for name, timing in timings.items():
            mfu = f"{100 * work / timing.best / (peak * 1e12):.1f}%" if peak else "n/a"
            lines.append(
                f"| {budget} | {name} | {timing.best:.3f} | "
                f"{workload.n_records / timing.best:,.0f} | {plan.real_tokens / timing.best:,.0f} "
                f"| {mfu} | {timing.best_extra / 2**30:.2f} | {timing.best / floor:.3f}x | "
                f"{timing.runs_text()} |"
            )
        notes.append(
            f"- toks_per_batch {budget}: {len(plan.shapes)} batches, {plan.real_tokens:,} tokens "
            f"({plan.padded_tokens:,} padded); {agreement_line(agreement)[2:]}"
        )
        if budget == 2048:
            ratio = timings["ours"].best / floor
            notes.append(
                f"- Target at toks_per_batch 2048: ours <= {TARGETS['gpu']:.2f}x the floor: "
                f"{ratio:.3f}x: met {yes_no(ratio <= TARGETS['gpu'])} (median runs: "
                f"{timings['ours'].median / timings['floor'].median:.3f}x)."
            )
        notes += noise_note(timings)
        del plan
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return lines + ["", *notes]


# --------------------------------------------------------------------------- profile


def profile_host(options: Options, tokenizer: EsmTokenizer, top: int = 30) -> None:
    """OURS' stages run serially on one file under cProfile (host mode); prints hotspots.

    Uses the pipeline's stage functions (read+tokenize+batch, compute+pool, assemble+
    validate, save), so it shows where the per-record time goes without thread overlap.
    """
    from fastesm_extract import FileJob
    from fastesm_extract.pipeline import (
        ExtractionSettings,
        assemble_output,
        compute_file,
        prepare_file,
    )
    from fastesm_extract.store import save_embeddings_atomic

    torch.set_num_threads(1)
    workload = write_workload(options.scratch / "fasta", 1, options.records, options.seed)
    model = StandInModel(max(options.toks_per_batch, TRUNCATION + SPECIALS), seed=options.seed)
    loaded = prepare_model(model, tokenizer)
    settings = ExtractionSettings(options.toks_per_batch, TRUNCATION)
    job = FileJob(workload.files[0], options.scratch / "profile" / "output_1_ESM.pt")
    n = options.records

    def run_stages(stage_seconds: dict[str, list[float]]) -> None:
        started = time.perf_counter()
        prepared = prepare_file(job, loaded, settings)
        stage_seconds["prepare_file (read, parse, tokenize, batch)"].append(
            time.perf_counter() - started
        )
        started = time.perf_counter()
        computed = compute_file(prepared, loaded)
        stage_seconds["compute_file (forward, pool)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        proteins, data, _ = assemble_output(computed, loaded.hidden_size)
        stage_seconds["assemble_output (views, validate)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        save_embeddings_atomic(job.output, proteins, data)
        stage_seconds["save_embeddings_atomic"].append(time.perf_counter() - started)

    stage_seconds: dict[str, list[float]] = {
        key: []
        for key in (
            "prepare_file (read, parse, tokenize, batch)",
            "compute_file (forward, pool)",
            "assemble_output (views, validate)",
            "save_embeddings_atomic",
        )
    }
    for _ in range(max(2, options.repeats)):
        run_stages(stage_seconds)
    print(
        f"Serial stages of ours, one file of {n:,} records, median of "
        f"{len(next(iter(stage_seconds.values())))} runs (torch threads 1):"
    )
    total = 0.0
    for stage, seconds in stage_seconds.items():
        median = statistics.median(seconds)
        total += median
        print(f"  {stage:<46} {median * 1e3:8.1f} ms {median / n * 1e6:8.2f} us/record")
    print(
        f"  {'total':<46} {total * 1e3:8.1f} ms {total / n * 1e6:8.2f} us/record "
        f"({n / total:,.0f} records/s serial)"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    run_stages({key: [] for key in stage_seconds})
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():
        rows.append((tottime, cumtime, calls, f"{Path(filename).name}:{line}:{function}"))
    rows.sort(reverse=True)
    print(f"\ncProfile (one serial pass, profiler overhead included), top {top} by own time:")
    print(f"  {'own us/rec':>10} {'cum us/rec':>10} {'calls':>8}  function")
    for tottime, cumtime, calls, name in rows[:top]:
        print(f"  {tottime / n * 1e6:10.2f} {cumtime / n * 1e6:10.2f} {calls:8d}  {name}")


# --------------------------------------------------------------------------- main


MODE_DEFAULTS = {  # (files, records per file, repeats)
    "host": (3, 10_000, 3),
    "simulated": (3, 10_000, 2),
    "cpu-model": (2, 1_000, 3),
    "gpu": (2, 10_000, 2),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark fastesm-extract against a straightforward extractor "
        "(see the module docstring).",
    )
    parser.add_argument(
        "--mode", choices=["host", "simulated", "cpu-model", "gpu", "all"], default="all"
    )
    parser.add_argument("--files", type=int, help="FASTA files (default: per mode)")
    parser.add_argument("--records", type=int, help="proteins per file (default: per mode)")
    parser.add_argument("--repeats", type=int, help="runs per variant, best kept (per mode)")
    parser.add_argument(
        "--toks-per-batch",
        type=int,
        default=2048,
        help="token budget for modes host, simulated, cpu-model (default 2048)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="dense fp16 peak of the GPU for MFU (default: from its name)",
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch --output")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring: cProfile ours' stages on one host-mode file",
    )
    parser.add_argument("--scratch", type=Path, help="temporary folder (default: system temp)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    source_version()  # the code imported now is the code measured, whatever is committed later
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("fastesm_extract").setLevel(logging.WARNING)
    modes = ["host", "simulated", "cpu-model", "gpu"] if args.mode == "all" else [args.mode]
    if args.profile:
        modes = ["host"]
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-extract-", dir=args.scratch) as temp:
        scratch_root = Path(temp)
        tokenizer = write_tokenizer(scratch_root / "tokenizer")
        for mode in modes:
            if mode == "gpu" and not torch.cuda.is_available():
                if args.mode == "gpu":  # asked for by name: not measuring it is a failure
                    log.error(
                        "gpu mode needs CUDA, not available here (torch %s)", torch.__version__
                    )
                    return 2
                log.info("gpu mode skipped: CUDA is not available (torch %s)", torch.__version__)
                continue
            files, records, repeats = MODE_DEFAULTS[mode]
            options = Options(
                files=args.files or files,
                records=args.records or records,
                repeats=args.repeats or repeats,
                toks_per_batch=args.toks_per_batch,
                seed=args.seed,
                scratch=scratch_root / mode,
            )
            if args.profile:
                profile_host(options, tokenizer)
                return 0
            log.info(
                "mode %s: %d files x %d records, %d repeats",
                mode,
                options.files,
                options.records,
                options.repeats,
            )
            torch.set_num_threads(default_threads)
            if mode == "host":
                lines = mode_host(options, tokenizer)
            elif mode == "simulated":
                lines = mode_simulated(options, tokenizer)
            elif mode == "cpu-model":
                lines = mode_cpu_model(options, tokenizer)
            else:
                lines = mode_gpu(options, tokenizer, peak_override=args.peak_tflops)
            print("\n".join(lines) + "\n", flush=True)
            if not args.no_write:
                update_markdown(args.output, mode, lines)
            shutil.rmtree(options.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
