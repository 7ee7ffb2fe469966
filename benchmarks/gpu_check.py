"""One command for a lent GPU: CUDA tests, ceilings, fidelity, benchmark; a report.

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
  compile    eager vs torch.compile'd ours on the FastESM stand-in and on EsmModel: records/s
             per budget, first compile, warm start in a new process, compiled fp16 vs fp32
             cosine (gpu_compile.py)
The default steps are the compile check's (tests, ceilings, compile: about 8 minutes on an
H200); `--steps tests,ceilings,model,fidelity,attention,bench` is the earlier GPU check
(model floor, fidelity, attention, benchmark).
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
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import transformers
from baselines import ModelShape, build_esm
from compile_runs import ARCHITECTURES
from gpu_bench import FASTESM2_650, GPU_BUDGETS, datasheet_peak, run_gpu_benchmark
from gpu_compile import step_compile
from gpu_steps import step_attention, step_ceilings, step_fidelity, step_tests
from harness import Deadline
from machine import environment
from report_gpu import render_gpu
from workload import write_tokenizer, write_workload

from fastesm_extract import prepare_model

SMOKE_SHAPE = ModelShape(layers=2, hidden=64, heads=4, intermediate=128)
COMPILE_BUDGETS = (2048, 8192, 16384)


# --------------------------------------------------------------------------- steps


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
        previous = report.data["steps"].get(name, {})
        if previous.get("status") == "running":  # what the step measured before failing
            entry["partial"] = previous.get("result")
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
    parser.add_argument(
        "--repeats", type=int, help="runs per variant and budget (2, compile step 1; smoke 1)"
    )
    parser.add_argument("--budgets", help="toks_per_batch list, e.g. 2048,4096,8192,16384")
    parser.add_argument("--fidelity-records", type=int, help="records (1,000; smoke 40)")
    parser.add_argument("--deadline", type=float, default=470.0, help="seconds for all steps")
    parser.add_argument("--steps", default="tests,ceilings,compile")
    parser.add_argument("--archs", default=",".join(ARCHITECTURES), help="compile step's")
    parser.add_argument("--compile-budgets", help="compile step's (2048,8192,16384)")
    parser.add_argument(
        "--compile-shapes",
        choices=["buckets", "dynamic"],
        default="buckets",
        help="static width per bucket (the default of --compile) or dynamic widths",
    )
    parser.add_argument("--compile-backend", default="inductor", help="smoke: eager")
    parser.add_argument("--peak-tflops", type=float, help="override the data-sheet peak")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace, cuda: bool) -> dict:
    """What this run does, with the smoke defaults where --smoke is given."""
    smoke = args.smoke
    budgets = args.budgets or ("256,512" if smoke else ",".join(map(str, GPU_BUDGETS)))
    default_compile = budgets if smoke else ",".join(map(str, COMPILE_BUDGETS))
    compile_budgets = args.compile_budgets or default_compile
    return {
        "smoke": smoke,
        "files": args.files,
        "records": args.records or (200 if smoke else 10_000),
        "repeats": args.repeats or (1 if smoke else 2),
        "budgets": [int(budget) for budget in budgets.split(",")],
        "fidelity_records": args.fidelity_records or (40 if smoke else 1_000),
        "deadline_s": args.deadline,
        "model": vars(SMOKE_SHAPE if smoke else FASTESM2_650)
        | {"dtype": "float16" if cuda else "float32"},
        "steps": args.steps.split(","),
        "compile": {
            "architectures": args.archs.split(","),
            "budgets": [int(budget) for budget in compile_budgets.split(",")],
            "shapes": args.compile_shapes,
            "backend": args.compile_backend,
            "repeats": args.repeats or 1,  # two architectures x two modes: one run each
        },
    }


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
    settings = settings_of(args, cuda)
    shape = SMOKE_SHAPE if args.smoke else FASTESM2_650
    budgets = settings["budgets"]
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(device) | {"command": " ".join(sys.argv)}
    report = Report(args.out, env, settings)
    deadline = Deadline(args.deadline - (time.monotonic() - started))
    peaks = {"datasheet": args.peak_tflops or datasheet_peak(env.get("gpu", ""))}
    models: dict[str, torch.nn.Module] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temp:
        scratch = Path(temp)
        tokenizer = write_tokenizer(scratch / "tokenizer")
        fidelity_workload = write_workload(
            scratch / "fidelity", 1, settings["fidelity_records"], 100
        )
        fasta = fidelity_workload.files[0]

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

        def compile_step() -> dict:
            models.clear()  # the model step's three copies: room for the compile step's
            if cuda:
                torch.cuda.empty_cache()
            options = settings["compile"]

            def partial(result: dict) -> None:
                report.data["steps"]["compile"] = {"status": "running", "result": result}
                report.flush()

            return step_compile(
                options["architectures"],
                scratch=scratch / "compile",
                records=settings["records"],
                seed=args.seed,
                on_record=partial,
                deadline=deadline,
                shape=shape,
                device=device,
                dtype=torch.float16 if cuda else torch.float32,
                tokenizer=tokenizer,
                fidelity_workload=fidelity_workload,
                budgets=options["budgets"],
                repeats=options["repeats"],
                options={
                    "backend": options["backend"],
                    "dynamic_width": options["shapes"] == "dynamic",
                },
            )

        steps = {
            "tests": lambda: step_tests(args.out, max(60.0, min(150.0, deadline.left()))),
            "ceilings": ceilings,
            "model": build,
            "fidelity": lambda: step_fidelity(
                models, tokenizer, fasta, settings["fidelity_records"]
            ),
            "attention": lambda: step_attention(models["float16"], tokenizer, fasta),
            "bench": bench,
            "compile": compile_step,
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
