"""The CPU modes: each measures ours, the baseline (and the floor) and returns a record.

  host       stand-in model (hidden 1280) whose forward returns a fixed tensor, no compute,
             one torch thread: records/s.
  simulated  the same stand-in, its forward first sleeps 2 us per padded token (releasing the
             GIL, like waiting on a GPU): end-to-end time / simulated device time.
  cpu-model  a small real ESM2 (6 layers x 320, random weights) on the CPU: end-to-end time /
             floor, the floor being the model calls alone on the same pre-tokenized batches.
The GPU mode is `gpu_bench.py`; `report.py` turns records into BENCHMARKS.md sections.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from baselines import HIDDEN, StandInModel, run_baseline, run_floor, run_ours
from harness import QUIET_MAX_WAIT, Agreement, Timing, measure, warm_up
from machine import environment
from transformers import EsmTokenizer
from workload import (
    MAX_LENGTH,
    MIN_LENGTH,
    SPECIALS,
    TRUNCATION,
    Workload,
    plan_batches,
    write_workload,
)

from fastesm_extract import load_model, prepare_model
from fastesm_extract.demo import build_demo_checkpoint

SLEEP_PER_TOKEN = 2e-6  # simulated device: seconds per padded token
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Options:
    files: int
    records: int
    repeats: int
    toks_per_batch: int
    seed: int
    scratch: Path
    quiet_wait: float = QUIET_MAX_WAIT  # seconds to wait for a quiet CPU before each run


@dataclass(frozen=True)
class ModeResult:
    """What one mode measured: every run of every variant, and how their outputs agree."""

    mode: str
    environment: dict
    settings: str  # what ran, in words, for the report
    n_records: int
    timings: dict[str, Timing]
    agreement: Agreement


def workload_text(options: Options) -> str:
    return (
        f"{options.files} files x {options.records:,} proteins, lengths uniform "
        f"{MIN_LENGTH}-{MAX_LENGTH}, 20 amino acids, seed {options.seed}; best of "
        f"{options.repeats} interleaved runs, order rotated each repeat"
    )


def bind(
    variants: dict[str, Callable[[Workload, Path], None]], workload: Workload
) -> dict[str, Callable[[Path], None]]:
    return {name: (lambda out, a=action: a(workload, out)) for name, action in variants.items()}


def measure_stand_in(
    options: Options, tokenizer: EsmTokenizer, model: StandInModel
) -> tuple[Workload, dict[str, Timing], Agreement]:
    """Baseline and ours with a stand-in model, one torch thread."""
    torch.set_num_threads(1)
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    loaded = prepare_model(model, tokenizer)
    budget = options.toks_per_batch
    variants: dict[str, Callable[[Workload, Path], None]] = {
        "baseline": lambda w, out: run_baseline(w, out, model, tokenizer, CPU, budget),
        "ours": lambda w, out: run_ours(w, out, loaded, budget),
    }
    warm_up(options.scratch, variants, options.seed)

    def reset() -> None:
        model.device_seconds = 0.0

    timings, agreement = measure(
        workload,
        options.scratch,
        options.repeats,
        bind(variants, workload),
        CPU,
        extra=lambda: model.device_seconds,
        reset=reset,
        quiet_wait=options.quiet_wait,
    )
    return workload, timings, agreement


def mode_host(options: Options, tokenizer: EsmTokenizer) -> ModeResult:
    model = StandInModel(max(options.toks_per_batch, TRUNCATION + SPECIALS), seed=options.seed)
    workload, timings, agreement = measure_stand_in(options, tokenizer, model)
    settings = (
        f"{workload_text(options)}; toks_per_batch {options.toks_per_batch}; stand-in forward "
        f"returns a view of a fixed (b, l, {HIDDEN}) float32 tensor; torch threads 1"
    )
    return ModeResult("host", environment(), settings, workload.n_records, timings, agreement)


def mode_simulated(options: Options, tokenizer: EsmTokenizer) -> ModeResult:
    model = StandInModel(
        max(options.toks_per_batch, TRUNCATION + SPECIALS), SLEEP_PER_TOKEN, seed=options.seed
    )
    workload, timings, agreement = measure_stand_in(options, tokenizer, model)
    settings = (
        f"{workload_text(options)}; toks_per_batch {options.toks_per_batch}; forward sleeps "
        f"{SLEEP_PER_TOKEN * 1e6:.0f} us x padded tokens (GIL released) then returns a fixed "
        f"tensor; torch threads 1"
    )
    return ModeResult("simulated", environment(), settings, workload.n_records, timings, agreement)


def mode_cpu_model(options: Options, tokenizer: EsmTokenizer) -> ModeResult:
    torch.set_num_threads(os.cpu_count() or 1)
    threads = torch.get_num_threads()
    checkpoint = build_demo_checkpoint(options.scratch / "demo-checkpoint", seed=options.seed)
    loaded = load_model(str(checkpoint), device="cpu")
    model, model_tokenizer = loaded.model, loaded.tokenizer
    workload = write_workload(
        options.scratch / "fasta", options.files, options.records, options.seed
    )
    budget = options.toks_per_batch
    plan = plan_batches(workload, model_tokenizer, budget, CPU)
    variants: dict[str, Callable[[Workload, Path], None]] = {
        "baseline": lambda w, out: run_baseline(w, out, model, model_tokenizer, CPU, budget),
        "ours": lambda w, out: run_ours(w, out, loaded, budget),
    }
    warm_up(options.scratch, variants, options.seed)
    bound = bind(variants, workload)
    bound["floor"] = lambda out: run_floor(model, plan, CPU)
    timings, agreement = measure(
        workload, options.scratch, options.repeats, bound, CPU, quiet_wait=options.quiet_wait
    )
    config = model.config
    settings = (
        f"{workload_text(options)}; toks_per_batch {budget}; ESM2 "
        f"{config.num_hidden_layers} layers x {config.hidden_size}, "
        f"{config.num_attention_heads} heads, float32, SDPA; torch threads {threads}; floor = "
        f"model calls only on the same batches, pre-tokenized ({len(plan.shapes)} batches, "
        f"{plan.padded_tokens:,} padded tokens)"
    )
    return ModeResult("cpu-model", environment(), settings, workload.n_records, timings, agreement)


MODES = {"host": mode_host, "simulated": mode_simulated, "cpu-model": mode_cpu_model}
