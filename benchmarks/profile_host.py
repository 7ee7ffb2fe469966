"""Where ours' per-record time goes: its stages run serially on one host-mode file, cProfiled.

    .venv/bin/python benchmarks/bench_extract.py --profile

Uses the pipeline's stage functions (read+tokenize+batch, compute+pool, assemble+validate,
save), so it shows the per-record cost of each without the threads' overlap.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from pathlib import Path

import torch
from baselines import StandInModel
from modes import Options
from transformers import EsmTokenizer
from workload import SPECIALS, TRUNCATION, write_workload

from fastesm_extract import prepare_model


def profile_host(options: Options, tokenizer: EsmTokenizer, top: int = 30) -> None:
    """OURS' stages run serially on one file under cProfile (host mode); prints hotspots.

    Uses the pipeline's stage functions (read+tokenize+batch, compute+pool, assemble+
    validate, save), so it shows where the per-record time goes without thread overlap.
    """
    from fastesm_extract import FileJob
    from fastesm_extract.disk.store import save_embeddings_atomic
    from fastesm_extract.extract.compute import assemble_output, compute_file
    from fastesm_extract.extract.prepare import prepare_file
    from fastesm_extract.settings import ExtractionSettings

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
        output = assemble_output(computed, loaded.hidden_size)
        stage_seconds["assemble_output (views, validate)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        save_embeddings_atomic(job.output, output.proteins, output.data)
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
