"""One command for a lent GPU (issue 12): CUDA tests, ceilings, fidelity, benchmark; a report.

Usage (repository root, no install needed: the device's own torch and transformers are used):

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out "$OUT"     # or: make gpu-check
    PYTHONPATH=src python3 benchmarks/gpu_check.py --smoke --out /tmp/check  # tiny, CPU allowed

Steps, each guarded so that a failure is recorded and the next step still runs:
  tests      pytest tests/test_cuda.py (junit XML kept; measured fp16/bf16 errors printed)
  ceilings   fp16 matrix product TF/s and device-to-device copy GB/s, measured on this card
  fidelity   FastESM2_650-shaped model (random weights): fp16 and bf16 against fp32 on the same
             records through extract_fast_esm: minimum cosine, max abs difference
  attention  which SDPA kernels that model's attention really dispatches (profiler)
  bench      ours end to end vs the model-only floor vs the baseline at each toks_per_batch
After every step `gpu_check.json` (records) and `gpu_check.md` (rendered by report.py) are
rewritten under --out, so a run stopped by a time limit still leaves its partial report.
Without CUDA it exits 2 unless --smoke (tiny model, few records, CPU) is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers
from bench_extract import ModelShape, build_esm, source_version, write_tokenizer, write_workload
from gpu_bench import GPU_BUDGETS, Deadline, run_gpu_benchmark
from report import render_gpu

from fastesm_extract import extract_fast_esm, prepare_model

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_SHAPE = ModelShape(layers=2, hidden=64, heads=4, intermediate=128)
# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's data sheets.
DATASHEET_PEAKS = (("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0))
log = logging.getLogger("gpu_check")


def environment(device: torch.device) -> dict:
    env = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "source": source_version(),
        "cpu_cores": os.cpu_count(),
        "command": " ".join(sys.argv),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
            "cudnn": torch.backends.cudnn.version(),
        }
        try:
            query = "driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["nvidia_smi"] = "unavailable"
    return env


def datasheet_peak(env: dict) -> float | None:
    name = env.get("gpu", "")
    return next((peak for key, peak in DATASHEET_PEAKS if key in name), None)


# --------------------------------------------------------------------------- steps


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
    source = torch.randn((2**20 if smoke else 2**29) // 4, device=device)  # 2 GiB on the GPU
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


# --------------------------------------------------------------------------- main


class Report:
    """The records so far; `flush` rewrites gpu_check.json and gpu_check.md under `out`."""

    def __init__(self, out: Path, environment: dict, settings: dict) -> None:
        self.out = out
        self.data: dict = {"environment": environment, "settings": settings, "steps": {}}

    def flush(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "gpu_check.md").write_text("\n".join(render_gpu(self.data)) + "\n")


def run_step(report: Report, name: str, action: Callable[[], dict], started: float) -> bool:
    """Run one step; its result or its error goes into the report, which is flushed."""
    print(f"== {name} (at {time.monotonic() - started:.0f} s)", flush=True)
    step_started = time.monotonic()
    try:
        entry = {"status": "ok", "result": action()}
    except Exception as error:  # noqa: BLE001 - every step is guarded: the others still run
        entry = {
            "status": "error",
            "error": f"{type(error).__name__}: {error}"[:1000],
            "traceback": traceback.format_exc()[-4000:],
        }
        print(entry["traceback"], file=sys.stderr, flush=True)
    entry["seconds"] = round(time.monotonic() - step_started, 1)
    report.data["steps"][name] = entry
    report.flush()
    print(f"== {name}: {entry['status']} in {entry['seconds']:.1f} s", flush=True)
    return entry["status"] == "ok"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--smoke", action="store_true", help="tiny model and workload; CPU ok")
    parser.add_argument("--files", type=int, default=1, help="benchmark FASTA files")
    parser.add_argument("--records", type=int, help="proteins per file (10,000; smoke 200)")
    parser.add_argument("--repeats", type=int, help="runs per variant and budget (2; smoke 1)")
    parser.add_argument("--budgets", help="toks_per_batch list, e.g. 2048,4096,8192,16384")
    parser.add_argument("--fidelity-records", type=int, help="records (1,000; smoke 40)")
    parser.add_argument("--deadline", type=float, default=400.0, help="seconds for all steps")
    parser.add_argument("--steps", default="tests,ceilings,model,fidelity,attention,bench")
    parser.add_argument("--peak-tflops", type=float, help="override the data-sheet peak")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("fastesm_extract").setLevel(logging.WARNING)
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "none (CUDA not available)"
    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}); transformers "
        f"{transformers.__version__}; Python {platform.python_version()}; GPU {gpu}",
        flush=True,
    )
    if not cuda and not args.smoke:
        print(
            "gpu_check: CUDA is not available here; run it on a GPU machine, or pass --smoke "
            "for a tiny CPU run of the script itself",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    shape = SMOKE_SHAPE if args.smoke else ModelShape()
    budgets = (
        [int(b) for b in args.budgets.split(",")]
        if args.budgets
        else ([256, 512] if args.smoke else list(GPU_BUDGETS))
    )
    settings = {
        "smoke": args.smoke,
        "files": args.files,
        "records": args.records or (200 if args.smoke else 10_000),
        "repeats": args.repeats or (1 if args.smoke else 2),
        "budgets": budgets,
        "fidelity_records": args.fidelity_records or (40 if args.smoke else 1_000),
        "deadline_s": args.deadline,
        "model": vars(shape) | {"dtype": "float16" if cuda else "float32"},
        "steps": args.steps.split(","),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(device)
    report = Report(args.out, env, settings)
    deadline = Deadline(args.deadline - (time.monotonic() - started))
    peaks = {"datasheet": args.peak_tflops or datasheet_peak(env)}
    models: dict[str, torch.nn.Module] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temp:
        scratch = Path(temp)
        tokenizer = write_tokenizer(scratch / "tokenizer")
        fasta = write_workload(scratch / "fidelity", 1, settings["fidelity_records"], 100).files[0]

        def build() -> dict:
            models["float32"] = build_esm(shape, device, torch.float32, args.seed)
            for dtype in (torch.float16, torch.bfloat16):
                models[str(dtype).removeprefix("torch.")] = build_esm(
                    shape, device, dtype, args.seed
                )
            return {"parameters": sum(p.numel() for p in models["float32"].parameters())}

        def bench() -> dict:
            for name in ("float32", "bfloat16"):  # only the fp16 model is benchmarked
                models.pop(name, None)
            if cuda:
                torch.cuda.empty_cache()
            model = models["float16"] if cuda else build_esm(shape, device, torch.float32, 0)
            loaded = prepare_model(model, tokenizer, model_id="random ESM2")

            def partial(record: dict) -> None:
                report.data["steps"]["bench"] = {"status": "running", "result": record}
                report.flush()

            return run_gpu_benchmark(
                model,
                loaded,
                tokenizer,
                files=settings["files"],
                records=settings["records"],
                repeats=settings["repeats"],
                budgets=budgets,
                scratch=scratch / "bench",
                deadline=deadline,
                peaks=peaks,
                seed=args.seed,
                on_budget=partial,
            )

        def ceilings() -> dict:
            result = step_ceilings(device, args.smoke)
            peaks["measured_matmul"] = result["matmul_tflops"] if cuda else None
            return result

        steps = {
            "tests": lambda: step_tests(args.out, max(60.0, min(150.0, deadline.left()))),
            "ceilings": ceilings,
            "model": build,
            "fidelity": lambda: step_fidelity(
                models, tokenizer, fasta, settings["fidelity_records"]
            ),
            "attention": lambda: step_attention(models["float16"], tokenizer, fasta),
            "bench": bench,
        }
        for name in settings["steps"]:
            if deadline.left() <= 0:
                report.data["steps"][name] = {"status": "skipped", "error": "deadline"}
                ok = False
                continue
            ok &= run_step(report, name, steps[name], started)
    tests = report.data["steps"].get("tests", {}).get("result", {})
    ok &= tests.get("exit_code", 0) == 0
    report.data["total_s"] = round(time.monotonic() - started, 1)
    report.flush()
    print("\n".join(render_gpu(report.data)), flush=True)
    print(
        f"gpu_check: {'all steps ok' if ok else 'SOME STEPS FAILED'} in "
        f"{report.data['total_s']:.0f} s; report in {args.out}",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
