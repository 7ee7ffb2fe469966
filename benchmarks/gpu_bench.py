"""GPU mode: ours end to end, the model-only floor and the baseline, per budget.

Returns records (plain dicts, JSON-ready); `report_gpu.render_gpu` formats them. Every variant
runs the same batches of the same FASTA files with the same model; runs are interleaved, the
order rotated each repeat (`harness.measure`). No waiting for a quiet CPU here: the device
machine is not shared.

Floor: the model forward plus the masked mean on the device, inputs already tokenized and on
the device, synchronized at the end: what any extractor must spend on the card.
MFU: forward FLOPs of the padded batches (2 x non-embedding parameters per token, plus
4 x layers x hidden x width per token for QK^T and AV) / time / peak FLOP/s.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from baselines import ModelShape, build_esm, run_baseline, run_floor_pooled, run_ours
from harness import Deadline, Timing, measure
from machine import environment
from modes import Options
from workload import BatchPlan, Workload, plan_batches, write_workload

from fastesm_extract import LoadedModel, prepare_model

log = logging.getLogger("benchmarks")

GPU_BUDGETS = (2048, 4096, 8192, 16384)
FASTESM2_650 = ModelShape()  # 33 layers x 1280, 20 heads, intermediate 5120
# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets.
DATASHEET_PEAKS = (("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0))


def datasheet_peak(gpu_name: str) -> float | None:
    return next((peak for key, peak in DATASHEET_PEAKS if key in gpu_name), None)


def flops(model: torch.nn.Module, plan: BatchPlan) -> float:
    """Forward FLOPs over the padded batches: 2 x matmul parameters per token + attention.

    Matmul parameters exclude the embedding table (a lookup); attention adds
    QK^T and AV, 2 x 2 x width x hidden per token per layer.
    """
    config = model.config
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    attention = 4.0 * config.num_hidden_layers * config.hidden_size
    return sum(
        2.0 * dense * rows * width + attention * rows * width**2 for rows, width in plan.shapes
    )


def summarize(
    timings: dict[str, Timing], n_records: int, plan: BatchPlan, work: float, peaks: dict
) -> dict[str, dict]:
    """Per variant: every run, the best, and the figures derived from the best."""
    floor_best = timings["floor"].best if timings["floor"].runs else None
    out = {}
    for name, timing in timings.items():
        if not timing.runs:
            continue
        seconds, best = timing.best, timing.best_index
        out[name] = {
            "runs_s": [round(run, 4) for run in timing.runs],
            "best_s": seconds,
            "median_s": timing.median,
            "cpu_s": timing.cpu[best],
            "peak_gib": timing.peak[best] / 2**30,
            "records_per_s": n_records / seconds,
            "tokens_per_s": plan.real_tokens / seconds,
            "tflops": work / seconds / 1e12,
            "mfu": {key: work / seconds / (peak * 1e12) for key, peak in peaks.items() if peak},
            "vs_floor": seconds / floor_best if floor_best else None,
        }
    return out


def benchmark_budget(
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
    model, device = loaded.model, loaded.device
    plan = plan_batches(workload, tokenizer, budget, device)
    variants: dict[str, Callable[[Path], object]] = {
        "baseline": lambda out: run_baseline(workload, out, model, tokenizer, device, budget),
        "ours": lambda out: run_ours(workload, out, loaded, budget),
        "floor": lambda out: run_floor_pooled(model, plan),
    }
    started = time.monotonic()
    for folder in ("warm-baseline", "warm-ours"):  # ours would skip outputs already there
        shutil.rmtree(scratch / folder, ignore_errors=True)
    run_baseline(warmup, scratch / "warm-baseline", model, tokenizer, device, budget)
    run_ours(warmup, scratch / "warm-ours", loaded, budget)
    run_floor_pooled(model, plan)  # every batch shape once: kernel selection, allocator
    timings, agreement = measure(
        workload, scratch, repeats, variants, device, quiet_wait=0, deadline=deadline
    )
    work = flops(model, plan)
    return {
        "toks_per_batch": budget,
        "batches": len(plan.shapes),
        "real_tokens": plan.real_tokens,
        "padded_tokens": plan.padded_tokens,
        "flops": work,
        "repeats": len(timings["floor"].runs),
        "seconds_total": time.monotonic() - started,
        "agreement": vars(agreement),
        "variants": summarize(timings, workload.n_records, plan, work, peaks),
    }


def run_gpu_benchmark(
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
        log.info("toks_per_batch %d (%.0f s left)", budget, deadline.left())
        if deadline.left() < last_seconds:
            log.warning("budget %d skipped: too little time left (deadline)", budget)
            record["skipped_budgets"].append(budget)
            continue
        result = benchmark_budget(
            loaded, tokenizer, workload, warmup, budget, repeats, scratch, deadline, peaks
        )
        record["budgets"].append(result)
        last_seconds = result["seconds_total"]
        if loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        on_budget(record)
    return record


def run_gpu_mode(
    options: Options,
    tokenizer,
    peak_override: float | None = None,
    *,
    device: torch.device | None = None,
    shape: ModelShape = FASTESM2_650,
    budgets: Sequence[int] = GPU_BUDGETS,
) -> dict:
    """bench_extract's gpu mode: the FastESM2_650-shaped model (fp16 on CUDA) at every budget,
    as a gpu_check-shaped record holding only the benchmark step."""
    device = device or torch.device("cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = build_esm(shape, device, dtype, options.seed)
    loaded = prepare_model(model, tokenizer, model_id="random ESM2")
    env = environment(device)
    peaks = {"datasheet": peak_override or datasheet_peak(env.get("gpu", ""))}
    result = run_gpu_benchmark(
        loaded,
        tokenizer,
        files=options.files,
        records=options.records,
        repeats=options.repeats,
        budgets=budgets,
        scratch=options.scratch,
        deadline=Deadline(float("inf")),
        peaks=peaks,
        seed=options.seed,
    )
    settings = {"steps": ["bench"], "model": vars(shape) | {"dtype": str(dtype)[6:]}}
    return {
        "environment": env,
        "settings": settings,
        "steps": {"bench": {"status": "ok", "result": result}},
    }
