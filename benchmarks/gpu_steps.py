"""The steps of gpu_check that are not the benchmark: CUDA tests, ceilings, fidelity, attention.

Each returns a JSON-ready record; gpu_check runs them guarded, one after the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from machine import REPO_ROOT

from fastesm_extract import extract_fast_esm, prepare_model


def step_tests(out: Path, timeout: float) -> dict:
    """pytest tests/test_cuda.py in a child process; outcomes and recorded properties."""
    xml = out / "test_cuda.xml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "tests/test_cuda.py",
        f"--junitxml={xml}",
        "-o",
        "junit_family=xunit1",
    ]
    log_path = out / "test_cuda.log"
    with open(log_path, "w") as handle:  # written as it runs: kept if the time limit hits
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    print(log_path.read_text()[-3000:], flush=True)
    cases = []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (found.get("message") or "").partition("\n")[0][:300]
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases.append(
            {
                "name": case.get("name"),
                "outcome": outcome,
                "message": message,
                "properties": properties,
            }
        )
    return {
        "exit_code": done.returncode,
        "counts": dict(Counter(c["outcome"] for c in cases)),
        "cases": cases,
    }


def step_ceilings(device: torch.device, smoke: bool) -> dict:
    """The card's own ceilings: fp16 matmul on random data, device-to-device copy."""
    n = 512 if smoke else 8192
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    source = torch.randn((2**20 if smoke else 2**29) // 4, device=device)  # 512 MiB: 10x the L2
    target = torch.empty_like(source)

    def seconds_per(action: Callable[[], object], repeats: int) -> float:
        for _ in range(3):
            action()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            action()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) / repeats

    matmul = seconds_per(lambda: a @ b, 20)
    copy = seconds_per(lambda: target.copy_(source), 20)
    return {
        "matmul_n": n,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_tflops": 2 * n**3 / matmul / 1e12,
        "copy_bytes": 2 * source.numel() * 4,
        "copy_gb_s": 2 * source.numel() * 4 / copy / 1e9,
    }


def embeddings_of(model: torch.nn.Module, tokenizer, fasta: Path, budget: int) -> torch.Tensor:
    loaded = prepare_model(model, tokenizer, model_id="random ESM2")
    return torch.stack(extract_fast_esm(fasta, model=loaded, toks_per_batch=budget)[1])


def step_fidelity(models: dict, tokenizer, fasta: Path, n: int) -> dict:
    """fp16 and bf16 embeddings against fp32 ones of the same weights and records."""
    reference = embeddings_of(models["float32"], tokenizer, fasta, 2048).double()  # (n, d)
    result = {
        "records": n,
        "reference": "float32 on the same device",
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "mean_abs_reference": float(reference.abs().mean()),
    }
    for name in ("float16", "bfloat16"):
        other = embeddings_of(models[name], tokenizer, fasta, 2048).double()
        cosine = torch.nn.functional.cosine_similarity(other, reference, dim=1)  # (n,)
        relative = (other - reference).norm(dim=1) / reference.norm(dim=1)  # (n,)
        result[name] = {
            "min_cosine": float(cosine.min()),
            "mean_cosine": float(cosine.mean()),
            "max_abs_diff": float((other - reference).abs().max()),
            "max_relative_l2": float(relative.max()),
        }
        print(
            f"  {name} vs float32: min cosine {cosine.min():.6f}, max abs diff "
            f"{(other - reference).abs().max():.3e}",
            flush=True,
        )
    return result


def step_attention(model: torch.nn.Module, tokenizer, fasta: Path) -> dict:
    """SDPA operators dispatched by one extraction with the FastESM2_650-shaped model."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        embeddings_of(model, tokenizer, fasta, 2048)
    ops = Counter(e.name for e in profiler.events() if "scaled_dot_product" in e.name)
    return {"ops": dict(ops), "math_fallback": ops["aten::_scaled_dot_product_attention_math"]}
