"""Building blocks of the compile benchmarks: the two architectures, a run of ours
with a chosen forward, and a fresh process that times its start against a compile cache.

Architectures: "fastesm" is tests/fast_esm_remote's stand-in for FastPLMs' modeling_fastesm
(its own rotary module and SDPA call; the code FastESM2_650 users load), "esm" is
transformers' `EsmModel`. Both are built with random weights at any `ModelShape`.

`python3 benchmarks/compile_runs.py --child '<json>'` is the fresh process: it builds the
model, runs the workload compiled against the given cache and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from baselines import ModelShape, build_esm
from machine import REPO_ROOT
from workload import Workload, parse_fasta_simple, write_tokenizer

from fastesm_extract import LoadedModel, prepare_model
from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.extract.batching import SPECIAL_TOKENS_PER_SEQUENCE, make_batches
from fastesm_extract.extract.forward import Forward, bucket_width
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.running.sources import file_jobs
from fastesm_extract.settings import ExtractionSettings

ARCHITECTURES = ("fastesm", "esm")
MAX_WIDTH = 1024 + SPECIAL_TOKENS_PER_SEQUENCE  # the default truncation's longest width


def build_model(arch: str, shape: ModelShape, device: torch.device, dtype: torch.dtype, seed: int):
    """`arch`'s model at `shape`, seeded random weights, SDPA attention, eval mode."""
    if arch == "esm":
        return build_esm(shape, device, dtype, seed)
    if arch != "fastesm":
        raise ValueError(f"unknown architecture {arch!r}: use {', '.join(ARCHITECTURES)}")
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from fast_esm_checkpoint import load_modeling_module

    modeling = load_modeling_module()
    # Registered as an import would be (transformers does so for remote code): dynamo
    # looks the module up by name while tracing.
    sys.modules.setdefault(modeling.__name__, modeling)
    config = modeling.FastEsmConfig(
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
        attn_backend="sdpa",
    )
    torch.manual_seed(seed)
    with device:
        model = modeling.FastEsmModel(config)
    return model.to(dtype).eval()


def load(model: torch.nn.Module, tokenizer, arch: str) -> LoadedModel:
    return prepare_model(model, tokenizer, model_id=f"random {arch}")


def make_forward(loaded: LoadedModel, compiled: bool, options: dict) -> Forward:
    """Eager, or compiled as `options` say: cache_dir, backend, dynamic_width."""
    if not compiled:
        return Forward(loaded)
    return Forward(loaded, True, max_width=MAX_WIDTH, **options)


def run_with(forward: Forward, workload: Workload, out: Path, budget: int) -> None:
    """Ours end to end (read, tokenize, batch, forward, pool, write) with `forward`."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "failures.log"
    settings = ExtractionSettings(toks_per_batch=budget, overwrite=True)
    extractor = Extractor(forward.loaded, settings, FailureLog(log), show_progress=False)
    extractor.forward = forward  # one forward for the process, as in a real run
    summary = extractor.run(file_jobs(workload.files, out, log))
    if not summary.ok or summary.records_embedded != workload.n_records:
        raise RuntimeError(f"ours failed: {summary}")


def padded_tokens(workload: Workload, budget: int) -> tuple[int, int]:
    """Padded tokens of the workload's batches: as batched (eager), and rounded to buckets."""
    eager = bucketed = 0
    for fasta in workload.files:
        counts = [len(s) + SPECIAL_TOKENS_PER_SEQUENCE for _, s in parse_fasta_simple(fasta)]
        for rows in make_batches(counts, budget):
            width = max(counts[row] for row in rows)
            eager += len(rows) * width
            bucketed += len(rows) * bucket_width(width, MAX_WIDTH)
    return eager, bucketed


def graph_keys(workload: Workload, budget: int, dynamic_width: bool) -> set[str]:
    """The graphs (`Forward.first_calls` keys) a compiled run of the workload needs."""
    keys = set()
    for fasta in workload.files:
        counts = [len(s) + SPECIAL_TOKENS_PER_SEQUENCE for _, s in parse_fasta_simple(fasta)]
        for rows in make_batches(counts, budget):
            width = bucket_width(max(counts[row] for row in rows), MAX_WIDTH)
            keys.add(f"{'any' if dynamic_width else width}x{'1' if len(rows) == 1 else 'N'}")
    return keys


def time_fresh_start(spec: dict, timeout: float) -> dict:
    """A new process: build the model, run the workload compiled against `spec`'s cache."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT / "benchmarks")]),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"fresh process failed ({done.returncode}): {done.stderr[-2000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record | {"process_s": time.perf_counter() - started}


def child(spec: dict) -> dict:
    """The fresh process's side of `time_fresh_start`."""
    started = time.perf_counter()
    device = torch.device(spec["device"])
    shape = ModelShape(**spec["shape"])
    model = build_model(spec["arch"], shape, device, getattr(torch, spec["dtype"]), 0)
    tokenizer = write_tokenizer(Path(spec["scratch"]) / "tokenizer")
    compiled = spec.get("compiled", True)
    forward = make_forward(load(model, tokenizer, spec["arch"]), compiled, spec["forward"])
    built = time.perf_counter()
    workload = Workload([Path(f) for f in spec["files"]], spec["records_per_file"], 0)
    run_with(forward, workload, Path(spec["scratch"]) / "out", spec["budget"])
    return {
        "build_s": built - started,
        "run_s": time.perf_counter() - built,
        "graphs_ready_s": sum(forward.first_calls.values()),
        "first_calls": forward.first_calls,
        "compiled": forward.compiled,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fresh-process start of a compiled run")
    parser.add_argument("--child", required=True, help="JSON spec from time_fresh_start")
    print(json.dumps(child(json.loads(parser.parse_args().child))), flush=True)
