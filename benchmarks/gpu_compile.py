"""gpu_check's `compile` step: eager vs compiled ours, per architecture.

Per architecture ("fastesm" first: the one that ships; then "esm"), in order, each piece
skipped when the deadline leaves no time for it, the record flushed after each:
  first_compile  an empty compile cache, dynamo reset; the whole workload once, compiled, at
                 the first budget: every graph compiled (seconds per graph, first call each)
  budgets        eager and compiled ours, interleaved, best of `repeats`, records/s; padded
                 tokens as batched and rounded to buckets (the padding compiling costs)
  warm_start     a new process on the same cache: seconds until its graphs are ready
  fidelity       compiled fp16 vs eager fp32, same weights: min cosine on N records
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
from baselines import ModelShape
from compile_runs import (
    build_model,
    graph_keys,
    load,
    make_forward,
    padded_tokens,
    run_with,
    time_fresh_start,
)
from harness import Deadline, Timing, timed
from workload import Workload, write_workload

from fastesm_extract import load_embeddings

log = logging.getLogger("benchmarks")


def measure_budget(forwards: dict, workload: Workload, budget: int, repeats: int, scratch: Path):
    """Eager and compiled ours at one budget, interleaved, order rotated each repeat."""
    device = forwards["eager"].loaded.device
    timings = {name: Timing(name) for name in forwards}
    names = list(forwards)
    for repeat in range(repeats):
        for name in names[repeat % 2 :] + names[: repeat % 2]:
            out = scratch / f"{name}-{budget}-{repeat}"
            action = lambda f=forwards[name], o=out: run_with(f, workload, o, budget)  # noqa: E731
            timed(timings[name], action, device, quiet_wait=0)
            shutil.rmtree(out, ignore_errors=True)
    eager_tokens, bucketed_tokens = padded_tokens(workload, budget)
    result = {"toks_per_batch": budget, "padded_tokens": eager_tokens}
    result["padded_tokens_bucketed"] = bucketed_tokens
    for name, timing in timings.items():
        result[name] = {
            "runs_s": [round(run, 4) for run in timing.runs],
            "best_s": timing.best,
            "records_per_s": workload.n_records / timing.best,
            "peak_gib": timing.peak[timing.best_index] / 2**30,
        }
    result["speedup"] = result["eager"]["best_s"] / result["compiled"]["best_s"]
    return result


def fidelity(
    arch: str, compiled, shape: ModelShape, tokenizer, workload: Workload, scratch: Path, seed: int
) -> dict:
    """Compiled (model dtype) embeddings against eager float32 ones of the same weights."""
    device = compiled.loaded.device
    reference_model = build_model(arch, shape, device, torch.float32, seed)
    reference = make_forward(load(reference_model, tokenizer, arch), False, {})
    run_with(compiled, workload, scratch / "fidelity-compiled", 2048)
    run_with(reference, workload, scratch / "fidelity-float32", 2048)
    del reference, reference_model
    name = f"{workload.files[0].stem}_ESM.pt"
    ours = torch.stack(load_embeddings(scratch / "fidelity-compiled" / name)[1]).double()
    base = torch.stack(load_embeddings(scratch / "fidelity-float32" / name)[1]).double()
    cosine = torch.nn.functional.cosine_similarity(ours, base, dim=1)
    return {
        "records": len(cosine),
        "dtype": str(compiled.loaded.dtype).removeprefix("torch."),
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
        "max_abs_diff": float((ours - base).abs().max()),
    }


def run_architecture(
    arch: str,
    *,
    shape: ModelShape,
    device: torch.device,
    dtype: torch.dtype,
    tokenizer,
    workload: Workload,
    warmup: Workload,
    fidelity_workload: Workload,
    budgets: Sequence[int],
    repeats: int,
    options: dict,
    scratch: Path,
    deadline: Deadline,
    flush: Callable[[dict], None],
    seed: int = 0,
) -> dict:
    """One architecture's pieces, in order; `flush(record)` after each."""
    record: dict = {"architecture": arch, "shape": asdict(shape), "skipped": []}
    cache = scratch / f"cache-{arch}"
    shutil.rmtree(cache, ignore_errors=True)
    options = options | {"cache_dir": str(cache)}
    record["forward"] = {k: v for k, v in options.items() if k != "cache_dir"}
    loaded = load(build_model(arch, shape, device, dtype, seed), tokenizer, arch)
    torch._dynamo.reset()  # compiled from scratch: no graph of an earlier step reused
    forwards = {"eager": make_forward(loaded, False, {}), "compiled": None}
    forwards["compiled"] = compiled = make_forward(loaded, True, options)
    started = time.perf_counter()
    run_with(compiled, workload, scratch / "first", budgets[0])  # compiles every graph
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    record["first_compile"] = {
        "first_run_s": time.perf_counter() - started,
        "graphs": len(compiled.first_calls),
        "compile_s": sum(compiled.first_calls.values()),
        "first_calls_s": dict(compiled.first_calls),
        "compiled": compiled.compiled,
        "failure": compiled.failure,
    }
    shutil.rmtree(scratch / "first", ignore_errors=True)
    flush(record)
    record["budgets"] = []
    budget_seconds = 0.0
    for budget in budgets:
        if deadline.left() < budget_seconds + 10:
            record["skipped"].append(f"budget {budget}")
            continue
        log.info("%s: toks_per_batch %d (%.0f s left)", arch, budget, deadline.left())
        started = time.monotonic()
        run_with(forwards["eager"], warmup, scratch / "warm-eager", budget)  # kernels, allocator
        if not graph_keys(workload, budget, compiled.dynamic_width) <= set(compiled.first_calls):
            run_with(compiled, workload, scratch / "warm-compiled", budget)  # compile, untimed
        record["budgets"].append(measure_budget(forwards, workload, budget, repeats, scratch))
        budget_seconds = time.monotonic() - started
        flush(record)
    # Graphs first needed after the first run (single-row batches of a larger budget, say).
    record["later_graphs"] = sorted(
        set(compiled.first_calls) - set(record["first_compile"]["first_calls_s"])
    )
    # The fresh process runs the first run's workload and budget: the same graphs, each one
    # loaded from the cache (its seconds to first call are the warm start; the rest of the
    # run is compute, reported apart).
    spec = {
        "arch": arch,
        "shape": asdict(shape),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "forward": options,
        "files": [str(f) for f in workload.files],
        "records_per_file": workload.records_per_file,
        "budget": budgets[0],
        "scratch": str(scratch / f"fresh-{arch}"),
    }
    pieces = {
        "warm_start": (90, partial(time_fresh_start, spec, timeout=deadline.left() - 5)),
        "fidelity": (
            20,
            partial(fidelity, arch, compiled, shape, tokenizer, fidelity_workload, scratch, seed),
        ),
    }
    for name, (needs_s, action) in pieces.items():
        if deadline.left() < needs_s:
            record["skipped"].append(name)
            continue
        try:  # a failure here must not lose what was measured before
            record[name] = action()
        except Exception as error:  # noqa: BLE001 - recorded in the report
            record[name] = {"error": f"{type(error).__name__}: {error}"[:1000]}
        flush(record)
    return record


def step_compile(
    architectures: Sequence[str],
    *,
    scratch: Path,
    records: int,
    seed: int,
    on_record: Callable[[dict], None],
    deadline: Deadline,
    min_architecture_s: float = 150.0,
    **common,
) -> dict:
    """Every architecture in turn; the whole step's record so far goes to `on_record`. An
    architecture after the first starts only with `min_architecture_s` left (a first
    compile and a budget)."""
    workload = write_workload(scratch / "fasta", 1, records, seed)
    warmup = write_workload(scratch / "warmup", 1, 200, seed + 1)
    result: dict = {"records": workload.n_records, "seed": seed, "architectures": []}
    for index, arch in enumerate(architectures):
        if deadline.left() < (min_architecture_s if index else 30):
            result.setdefault("skipped", []).append(arch)
            continue

        def flush(record: dict, arch: str = arch) -> None:
            done = [r for r in result["architectures"] if r["architecture"] != arch]
            result["architectures"] = [*done, record]
            on_record(result)

        run_architecture(
            arch,
            workload=workload,
            warmup=warmup,
            scratch=scratch / arch,
            deadline=deadline,
            flush=flush,
            seed=seed,
            **common,
        )
        torch._dynamo.reset()  # its graphs (and the model they hold) go before the next
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result
