"""GPU benchmark (issue 12): ours end to end, the model-only floor and the baseline, per budget.

Returns records (plain dicts, JSON-ready); `report.render_gpu` formats them. Every variant runs
the same batches of the same FASTA files with the same model; runs are interleaved, the order
rotated each repeat. No waiting for a quiet CPU here: the device machine is not shared.

Floor: the model forward plus the masked mean on the device, inputs already tokenized and on
the device, synchronized at the end: what any extractor must spend on the card.
MFU: forward FLOPs of the padded batches (2 x non-embedding parameters per token, plus
4 x layers x hidden x width per token for QK^T and AV) / time / peak FLOP/s.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_extract import (
    ModelShape,
    Workload,
    compare_outputs,
    flops,
    plan_batches,
    run_baseline,
    run_ours,
    write_workload,
)

from fastesm_extract import LoadedModel

log = logging.getLogger("gpu_bench")

GPU_BUDGETS = (2048, 4096, 8192, 16384)
VARIANTS = ("baseline", "ours", "floor")


class Deadline:
    """Seconds left before a wall-clock limit, so a long run ends with a partial report."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


@dataclass(frozen=True)
class DeviceBatches:
    """The batches of a workload, tokenized and on the device, with what pooling needs."""

    inputs: list[tuple[torch.Tensor, ...]]  # (ids (b, l), attention (b, l), residues (b, 1, l),
    # residue counts (b, 1)) per batch
    shapes: list[tuple[int, int]]  # (rows, padded width) per batch
    real_tokens: int  # <cls>/<eos> included, padding excluded

    @property
    def padded_tokens(self) -> int:
        return sum(rows * width for rows, width in self.shapes)


def device_batches(workload: Workload, tokenizer, budget: int, device: torch.device):
    plan = plan_batches(workload, tokenizer, budget, device)
    inputs = []
    for ids, attention in plan.inputs:
        residues = attention.clone()  # (b, l): 1 on residues only
        residues[:, 0] = 0  # <cls>
        lengths = attention.sum(1)  # (b,) residues + 2
        residues[torch.arange(len(ids), device=device), lengths - 1] = 0  # <eos>
        counts = residues.sum(1, keepdim=True).float()  # (b, 1)
        inputs.append((ids, attention, residues.unsqueeze(1).float(), counts))
    return DeviceBatches(inputs, plan.shapes, plan.real_tokens)


@torch.inference_mode()
def run_floor(model: torch.nn.Module, batches: DeviceBatches) -> list[torch.Tensor]:
    """Forward + masked mean per batch on the device; nothing else."""
    pooled = []
    for ids, attention, residues, counts in batches.inputs:
        hidden = model(input_ids=ids, attention_mask=attention).last_hidden_state  # (b, l, d)
        pooled.append(torch.bmm(residues, hidden.float()).squeeze(1) / counts)  # (b, d)
    return pooled


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_run(action: Callable[[], object], device: torch.device) -> dict:
    """One run: wall seconds (device synchronized), process CPU seconds, peak device bytes."""
    gc.collect()
    os.sync()  # the previous run's writes must not be flushed during this one
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cpu, started = time.process_time(), time.perf_counter()
    action()
    synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return {"s": seconds, "cpu_s": time.process_time() - cpu, "peak_bytes": int(peak)}


def summarize(
    runs: dict[str, list[dict]], n_records: int, batches: DeviceBatches, work: float, peaks: dict
) -> dict[str, dict]:
    """Per variant: every run, the best, and the figures derived from the best."""
    floor_best = min(r["s"] for r in runs["floor"]) if runs.get("floor") else None
    out = {}
    for name, variant_runs in runs.items():
        if not variant_runs:
            continue
        best = min(variant_runs, key=lambda r: r["s"])
        seconds = best["s"]
        out[name] = {
            "runs_s": [round(r["s"], 4) for r in variant_runs],
            "best_s": seconds,
            "median_s": statistics.median(r["s"] for r in variant_runs),
            "cpu_s": best["cpu_s"],
            "peak_gib": best["peak_bytes"] / 2**30,
            "records_per_s": n_records / seconds,
            "tokens_per_s": batches.real_tokens / seconds,
            "tflops": work / seconds / 1e12,
            "mfu": {key: work / seconds / (peak * 1e12) for key, peak in peaks.items() if peak},
            "vs_floor": seconds / floor_best if floor_best else None,
        }
    return out


def benchmark_budget(
    model: torch.nn.Module,
    loaded: LoadedModel,
    tokenizer,
    workload: Workload,
    warmup: Workload,
    budget: int,
    repeats: int,
    scratch: Path,
    deadline: Deadline,
    peaks: dict,
) -> dict:
    """All variants at one token budget: warm-up, interleaved repeats, agreement check."""
    device = loaded.device
    batches = device_batches(workload, tokenizer, budget, device)
    actions: dict[str, Callable[[Path], object]] = {
        "baseline": lambda out: run_baseline(workload, out, model, tokenizer, device, budget),
        "ours": lambda out: run_ours(workload, out, loaded, budget),
        "floor": lambda out: run_floor(model, batches),
    }
    started = time.monotonic()
    for folder in ("warm-baseline", "warm-ours"):  # ours would skip outputs already there
        shutil.rmtree(scratch / folder, ignore_errors=True)
    run_baseline(warmup, scratch / "warm-baseline", model, tokenizer, device, budget)
    run_ours(warmup, scratch / "warm-ours", loaded, budget)
    run_floor(model, batches)  # every batch shape once: kernel selection, allocator
    synchronize(device)
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    agreement = None
    repeat_seconds = 0.0
    for repeat in range(repeats):
        if repeat and deadline.left() < 1.2 * repeat_seconds:
            log.warning("  budget %d: stopping after %d repeats (deadline)", budget, repeat)
            break
        repeat_started = time.monotonic()
        shift = repeat % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            out = scratch / f"{name}-{repeat}"
            run = timed_run(lambda a=actions[name], o=out: a(o), device)
            runs[name].append(run)
            log.info("  budget %5d %-8s run %d: %.3f s", budget, name, repeat + 1, run["s"])
        if agreement is None:
            agreement = agreement_of(workload, scratch / "ours-0", scratch / "baseline-0")
        for name in VARIANTS:
            shutil.rmtree(scratch / f"{name}-{repeat}", ignore_errors=True)
        repeat_seconds = time.monotonic() - repeat_started
    work = flops(model, ModelShape(*shape_of(model)), batches)
    return {
        "toks_per_batch": budget,
        "batches": len(batches.shapes),
        "real_tokens": batches.real_tokens,
        "padded_tokens": batches.padded_tokens,
        "flops": work,
        "repeats": len(runs["floor"]),
        "seconds_total": time.monotonic() - started,
        "agreement": agreement,
        "variants": summarize(runs, workload.n_records, batches, work, peaks),
    }


def agreement_of(workload: Workload, ours: Path, baseline: Path) -> dict:
    """Ours' outputs against the baseline's, record by record; a mismatch is reported, and
    the timings are kept."""
    try:
        return vars(compare_outputs(workload, ours, baseline))
    except RuntimeError as error:
        return {"error": str(error)}


def shape_of(model: torch.nn.Module) -> tuple[int, int, int, int]:
    config = model.config
    return (
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
    )


def run_gpu_benchmark(
    model: torch.nn.Module,
    loaded: LoadedModel,
    tokenizer,
    *,
    files: int,
    records: int,
    repeats: int,
    budgets: Sequence[int],
    scratch: Path,
    deadline: Deadline,
    peaks: dict,
    seed: int = 0,
    on_budget: Callable[[dict], None] = lambda record: None,
) -> dict:
    """Every budget in turn (skipping those the deadline leaves no time for); `on_budget` is
    called with the record so far after each, so a timeout keeps what was measured."""
    workload = write_workload(scratch / "fasta", files, records, seed)
    warmup = write_workload(scratch / "warmup", 1, 200, seed + 1)
    record: dict = {
        "files": files,
        "records_per_file": records,
        "records": workload.n_records,
        "repeats_asked": repeats,
        "seed": seed,
        "peaks_tflops": peaks,
        "budgets": [],
        "skipped_budgets": [],
    }
    last_seconds = 0.0
    for budget in budgets:
        if deadline.left() < last_seconds:
            log.warning("budget %d skipped: too little time left (deadline)", budget)
            record["skipped_budgets"].append(budget)
            continue
        result = benchmark_budget(
            model, loaded, tokenizer, workload, warmup, budget, repeats, scratch, deadline, peaks
        )
        record["budgets"].append(result)
        last_seconds = result["seconds_total"]
        if loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        on_budget(record)
    return record
