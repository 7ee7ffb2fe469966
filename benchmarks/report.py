"""Benchmark records -> BENCHMARKS.md sections: the one place that formats measurements.

Each section sits between `<!-- BEGIN bench:MODE -->` and `<!-- END bench:MODE -->`; writing one
replaces only that section, so the other recorded numbers stay as they are.

    python3 benchmarks/report.py --gpu-json "$OUT/gpu_check.json"   # gpu_check -> (d), (e)
    python3 benchmarks/report.py --diagnose-json "$OUT/gpu_diagnose.json"  # gpu_diagnose
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness import QUIET_LOAD, Agreement, Timing
from machine import REPO_ROOT
from markdown import header, update_markdown, yes_no
from report_gpu import render_diagnosis, render_gpu, render_gpu_compile

if TYPE_CHECKING:
    from modes import ModeResult

TARGETS = {
    "host_rate": 10_000.0,
    "host_speedup": 5.0,
    "simulated": 1.25,
    "cpu-model": 1.03,
}
TITLES = {
    "host": "(a) Host side: stand-in model, no compute, one torch thread",
    "simulated": "(b) Simulated device: stand-in sleeps 2 us per padded token",
    "cpu-model": "(c) CPU end-to-end: small real ESM2 (random weights) vs the pure forward time",
    "workers": "Workers: one process vs one worker process per device",
}


def agreement_line(agreement: Agreement) -> str:
    if agreement.error:
        return f"- Outputs: ours' files could not be compared: {agreement.error}."
    return (
        f"- Outputs: ours' files load with `weights_only=True`; {agreement.records:,} records, "
        f"IDs {'identical' if agreement.proteins_equal else 'DIFFERENT'} to the baseline's, "
        f"max abs difference of embeddings {agreement.max_abs_diff:.2e}."
    )


def noise_note(timings: dict[str, Timing]) -> list[str]:
    """A line explaining the `*` marks, when a run has one."""
    if all(load < QUIET_LOAD for t in timings.values() for load in t.loads):
        return []
    return [
        f"- `*`: other processes used >= {100 * QUIET_LOAD:.0f}% of the CPU during that run "
        "(shared machine); best and median use the unmarked runs when there are any."
    ]


def render_host(result: ModeResult) -> list[str]:
    timings, n = result.timings, result.n_records
    base, ours = timings["baseline"], timings["ours"]
    rate = {name: n / t.best for name, t in timings.items()}
    speedup = rate["ours"] / rate["baseline"]
    met = rate["ours"] >= TARGETS["host_rate"] and speedup >= TARGETS["host_speedup"]
    lines = [
        "| variant | best s | records/s | us/record | vs baseline | runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, timing in (("baseline", base), ("ours", ours)):
        lines.append(
            f"| {name} | {timing.best:.3f} | {rate[name]:,.0f} | "
            f"{1e6 / rate[name]:.1f} | {rate[name] / rate['baseline']:.2f}x | "
            f"{timing.runs_text()} |"
        )
    return lines + [
        "",
        f"- Target: ours >= {TARGETS['host_rate']:,.0f} records/s and >= "
        f"{TARGETS['host_speedup']:.0f}x baseline: {rate['ours']:,.0f} records/s, "
        f"{speedup:.2f}x: met {yes_no(met)} (median runs: "
        f"{n / ours.median:,.0f} records/s, {base.median / ours.median:.2f}x).",
    ]


def render_simulated(result: ModeResult) -> list[str]:
    timings = result.timings
    ratio = {name: t.best / t.best_extra for name, t in timings.items()}
    lines = [
        "| variant | best s | device s (sum of sleeps) | end-to-end / device | records/s "
        "| runs (s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, timing in timings.items():
        lines.append(
            f"| {name} | {timing.best:.3f} | {timing.best_extra:.3f} | {ratio[name]:.3f}x | "
            f"{result.n_records / timing.best:,.0f} | {timing.runs_text()} |"
        )
    ours = timings["ours"]
    return lines + [
        "",
        f"- Target: ours <= {TARGETS['simulated']:.2f}x the simulated device time: "
        f"{ratio['ours']:.3f}x: met {yes_no(ratio['ours'] <= TARGETS['simulated'])} "
        f"(median run: {ours.median / ours.best_extra:.3f}x).",
    ]


def render_cpu_model(result: ModeResult) -> list[str]:
    timings = result.timings
    floor = timings["floor"].best
    lines = ["| variant | best s | records/s | vs floor | runs (s) |", "|---|---:|---:|---:|---|"]
    for name, timing in timings.items():
        lines.append(
            f"| {name} | {timing.best:.3f} | {result.n_records / timing.best:,.0f} | "
            f"{timing.best / floor:.3f}x | {timing.runs_text()} |"
        )
    ratio = timings["ours"].best / floor
    return lines + [
        "",
        f"- Target: ours <= {TARGETS['cpu-model']:.2f}x the floor: {ratio:.3f}x: met "
        f"{yes_no(ratio <= TARGETS['cpu-model'])} (median runs: "
        f"{timings['ours'].median / timings['floor'].median:.3f}x).",
    ]


RENDERERS = {"host": render_host, "simulated": render_simulated, "cpu-model": render_cpu_model}


def render(result: ModeResult) -> list[str]:
    """A CPU mode's section: header, table, target, output agreement, noise note."""
    lines = header(TITLES[result.mode], result.environment, result.settings)
    lines += RENDERERS[result.mode](result)
    return lines + [agreement_line(result.agreement), *noise_note(result.timings)]


def render_workers(record: dict) -> list[str]:
    """bench_workers' record: one process against one worker process per device."""
    lines = header(TITLES["workers"], record["environment"], record["settings"])
    lines += ["| variant | best s | records/s | runs (s) |", "|---|---:|---:|---|"]
    for name, runs in record["times"].items():
        best = min(runs)
        shown = ", ".join(f"{run:.2f}" for run in runs)
        lines.append(f"| {name} | {best:.2f} | {record['records'] / best:,.0f} | {shown} |")
    identical = "yes" if record["identical"] else "NO"
    return lines + ["", f"- Outputs bitwise identical between the two: {identical}."]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-json", type=Path, help="gpu_check.json -> section (d)")
    parser.add_argument("--diagnose-json", type=Path, help="gpu_diagnose.json -> its section")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.gpu_json is None and args.diagnose_json is None:
        parser.error("give --gpu-json and/or --diagnose-json")
    if args.gpu_json is not None:
        check = json.loads(args.gpu_json.read_text())
        steps = check.get("steps", {})
        if "compile" in steps:  # its own section: a compile-only check keeps section (d)
            update_markdown(args.output, "gpu-compile", render_gpu_compile(check))
            print(f"{args.output}: gpu-compile section rewritten from {args.gpu_json}")
        if set(steps) - {"compile", "tests", "ceilings"} or "compile" not in steps:
            others = {name: entry for name, entry in steps.items() if name != "compile"}
            settings = check.get("settings", {})
            asked = [name for name in settings.get("steps", []) if name != "compile"]
            rest = check | {"steps": others, "settings": settings | {"steps": asked}}
            update_markdown(args.output, "gpu", render_gpu(rest))
            print(f"{args.output}: gpu section rewritten from {args.gpu_json}")
    if args.diagnose_json is not None:
        record = json.loads(args.diagnose_json.read_text())
        update_markdown(args.output, "gpu-diagnosis", render_diagnosis(record))
        print(f"{args.output}: gpu-diagnosis section rewritten from {args.diagnose_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
