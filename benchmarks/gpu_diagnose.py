"""Why the GPU floor is where it is: one short script for a lent GPU.

The first gpu_check run showed ours == the model-only floor (0.999x-1.04x), so the pipeline
adds nothing; the floor itself was ~22% MFU. This measures what bounds the floor:

  floor     the eager forward + masked mean at larger budgets (8192, 16384)
  profile   CUDA kernel time by kind (matmul, attention, other) over the first batches at
            8192, against the same batches' wall time: GPU busy share (host-bound or not)
  compiled  the same floor through torch.compile (fused elementwise work): how much of the
            gap fusion closes, and how far its numbers move from eager (why it is opt-in only)

Usage: PYTHONPATH=src python3 benchmarks/gpu_diagnose.py --out "$OUT" [--deadline 330]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from baselines import ModelShape, build_esm, run_floor_pooled
from gpu_bench import flops
from harness import Deadline
from machine import environment
from workload import plan_batches, write_tokenizer, write_workload

PROFILED_BATCHES = 40


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_floor(model: torch.nn.Module, plan, repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run_floor_pooled(model, plan)
        sync()
        runs.append(time.perf_counter() - start)
    return runs


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    if any(key in name for key in ("attention", "fmha", "flash", "cudnn", "sdpa")):
        return "attention"
    if any(key in name for key in ("gemm", "cutlass", "xmma", "nvjet", "matmul", "cublas")):
        return "matmul"
    return "other"


def profile_floor(model: torch.nn.Module, plan) -> dict:
    """Kernel time by kind over the first batches, and those batches' unprofiled wall time."""
    from torch.profiler import ProfilerActivity, profile

    head = type(plan)(plan.inputs[:PROFILED_BATCHES], plan.shapes[:PROFILED_BATCHES], 0)
    wall = min(timed_floor(model, head, 3))
    on_gpu = torch.cuda.is_available()
    activity = ProfilerActivity.CUDA if on_gpu else ProfilerActivity.CPU  # CPU: --smoke only
    with profile(activities=[activity]) as prof:
        run_floor_pooled(model, head)
        sync()
    by_kind: dict[str, float] = {}
    kernels: dict[str, float] = {}
    launches = 0
    for event in prof.key_averages():
        micros = getattr(event, "self_device_time_total" if on_gpu else "self_cpu_time_total", 0)
        if not micros:
            continue
        launches += event.count
        kind = kind_of(event.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + micros / 1e6
        kernels[event.key[:90]] = kernels.get(event.key[:90], 0.0) + micros / 1e6
    busy = sum(by_kind.values())
    top = sorted(kernels.items(), key=lambda item: -item[1])[:12]
    return {
        "batches": len(head.inputs),
        "wall_s": wall,
        "kernel_s": busy,
        "gpu_busy_share": busy / wall,
        "kernel_launches": launches,
        "launches_per_batch": launches / len(head.inputs),
        "by_kind_s": by_kind,
        "top_kernels_s": top,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=330.0)
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU (a dry run)")
    args = parser.parse_args()
    deadline = Deadline(args.deadline)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if args.smoke else "cuda")
    report: dict = {"environment": environment(device), "steps": {}}

    def save() -> None:
        (args.out / "gpu_diagnose.json").write_text(json.dumps(report, indent=1, default=str))

    print(report["environment"].get("gpu"), torch.__version__, flush=True)
    scratch = Path(tempfile.mkdtemp())
    tokenizer = write_tokenizer(scratch)
    shape, dtype = ModelShape(), torch.float16
    if args.smoke:
        shape, dtype = ModelShape(2, 64, 4, 128), torch.float32
    model = build_esm(shape, device, dtype, 0)
    workload = write_workload(scratch / "fasta", 1, args.records, 0)
    plans = {b: plan_batches(workload, tokenizer, b, device) for b in (8192, 16384)}
    for budget, plan in plans.items():
        run_floor_pooled(model, plan)  # warm-up: kernel selection for every shape
        runs = timed_floor(model, plan, 2)
        work = flops(model, plan)
        report["steps"][f"floor_{budget}"] = {
            "runs_s": runs,
            "records_per_s": args.records / min(runs),
            "tflops": work / min(runs) / 1e12,
            "batches": len(plan.shapes),
        }
        print(budget, report["steps"][f"floor_{budget}"], flush=True)
        save()
    try:
        report["steps"]["profile_8192"] = profile_floor(model, plans[8192])
    except Exception as error:  # noqa: BLE001 - recorded; the compiled step still runs
        report["steps"]["profile_8192"] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report["steps"]["profile_8192"], indent=1), flush=True)
    save()
    if deadline.left() > 150:
        eager = run_floor_pooled(model, plans[8192])
        compiled = torch.compile(model, dynamic=True)
        start = time.perf_counter()
        try:
            first = run_floor_pooled(compiled, plans[8192])  # compiles, then runs every shape
            sync()
            compile_s = time.perf_counter() - start
            runs = timed_floor(compiled, plans[8192], 2) if deadline.left() > 30 else []
            diff = max((a - b).abs().max().item() for a, b in zip(eager, first))
            report["steps"]["compiled_8192"] = {
                "first_pass_s": compile_s,
                "runs_s": runs,
                "records_per_s": args.records / min(runs) if runs else None,
                "max_abs_diff_vs_eager": diff,
            }
        except Exception as error:  # noqa: BLE001 - a diagnosis, recorded either way
            report["steps"]["compiled_8192"] = {"error": f"{type(error).__name__}: {error}"}
        print(report["steps"]["compiled_8192"], flush=True)
        save()
    print(f"gpu_diagnose: done, {args.deadline - deadline.left():.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
