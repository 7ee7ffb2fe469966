"""Side-by-side benchmark: fastesm-extract ("ours") against a straightforward extractor.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_extract.py [--mode host|simulated|cpu-model|gpu|all]
                                                 [--files N] [--records N] [--repeats N]
    .venv/bin/python benchmarks/bench_extract.py --profile   # ours' stages under cProfile

Every mode runs in one process on the same synthetic VirNucPro-like workload (`workload.py`)
with ours, the baseline (`baselines.py`) and, for real models, the floor; `harness.py` times
them interleaved and checks their outputs agree; each mode returns a record that `report.py`
(`report_gpu.py` for the GPU) renders into its section of BENCHMARKS.md (`--output`;
`--no-write` only prints). Modes: host, simulated, cpu-model (`modes.py`) and gpu
(`gpu_bench.py`, CUDA only: asked for by name without CUDA it exits 2; `all` skips it).
On a lent GPU, `gpu_check.py` runs the GPU mode with the CUDA tests and fidelity checks.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from cli_common import add_run_arguments, publish
from gpu_bench import run_gpu_mode
from harness import QUIET_MAX_WAIT
from machine import source_version
from modes import MODES, Options
from profile_host import profile_host
from report import render
from report_gpu import render_gpu
from workload import write_tokenizer

log = logging.getLogger("benchmarks")

MODE_DEFAULTS = {  # (files, records per file, repeats)
    "host": (3, 10_000, 3),
    "simulated": (3, 10_000, 2),
    "cpu-model": (2, 1_000, 3),
    "gpu": (2, 10_000, 2),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark fastesm-extract against a straightforward extractor "
        "(see the module docstring).",
    )
    parser.add_argument("--mode", choices=[*MODE_DEFAULTS, "all"], default="all")
    add_run_arguments(parser)
    parser.add_argument(
        "--toks-per-batch",
        type=int,
        default=2048,
        help="token budget for modes host, simulated, cpu-model (default 2048)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="dense fp16 peak of the GPU for MFU (default: from its name)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_MAX_WAIT,
        help="seconds to wait for other processes to leave the CPU before each run",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring: cProfile ours' stages on one host-mode file",
    )
    parser.add_argument("--scratch", type=Path, help="temporary folder (default: system temp)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    source_version()  # the code imported now is the code measured, whatever is committed later
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("fastesm_extract").setLevel(logging.WARNING)
    modes = list(MODE_DEFAULTS) if args.mode == "all" else [args.mode]
    if args.profile:
        modes = ["host"]
    if args.mode == "gpu" and not torch.cuda.is_available():
        log.error("gpu mode needs CUDA, not available here (torch %s)", torch.__version__)
        return 2
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-extract-", dir=args.scratch) as temp:
        scratch_root = Path(temp)
        tokenizer = write_tokenizer(scratch_root / "tokenizer")
        for mode in modes:
            if mode == "gpu" and not torch.cuda.is_available():
                log.info("gpu mode skipped: CUDA is not available (torch %s)", torch.__version__)
                continue
            files, records, repeats = MODE_DEFAULTS[mode]
            options = Options(
                files=args.files or files,
                records=args.records or records,
                repeats=args.repeats or repeats,
                toks_per_batch=args.toks_per_batch,
                seed=args.seed,
                scratch=scratch_root / mode,
                quiet_wait=args.quiet_wait,
            )
            if args.profile:
                profile_host(options, tokenizer)
                return 0
            log.info(
                "mode %s: %d files x %d records, %d repeats",
                mode,
                options.files,
                options.records,
                options.repeats,
            )
            torch.set_num_threads(default_threads)
            if mode == "gpu":
                lines = render_gpu(run_gpu_mode(options, tokenizer, args.peak_tflops))
            else:
                lines = render(MODES[mode](options, tokenizer))
            publish(lines, mode, args)
            shutil.rmtree(options.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
