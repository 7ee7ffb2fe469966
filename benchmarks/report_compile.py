"""gpu_check's `compile` step (gpu_compile.py) -> its part of the GPU section of BENCHMARKS.md.

Targets refer to the architecture that ships, the FastESM stand-in.
"""

from __future__ import annotations

from markdown import yes_no

COMPILE_TARGETS = {
    "records_per_s": 2_500.0,  # compiled, at the best budget
    "speedup_best": 1.8,  # compiled vs eager ours of the same architecture, best budgets
    "speedup_2048": 1.5,
    "first_compile_s": 150.0,
    "warm_start_s": 30.0,
    "min_cosine": 0.9999,
}
SHIPPED = "fastesm"
NAMES = {"fastesm": "FastESM stand-in (modeling_fastesm)", "esm": "transformers EsmModel"}


def _budget_rows(arch: str, budgets: list[dict]) -> list[str]:
    rows = []
    for b in budgets:
        eager, compiled = b["eager"], b["compiled"]
        padding = b["padded_tokens_bucketed"] / b["padded_tokens"] - 1
        rows.append(
            f"| {NAMES.get(arch, arch)} | {b['toks_per_batch']} | "
            f"{eager['records_per_s']:,.0f} | {compiled['records_per_s']:,.0f} | "
            f"{b['speedup']:.2f}x | +{100 * padding:.1f}% | {eager['peak_gib']:.1f} / "
            f"{compiled['peak_gib']:.1f} | {', '.join(f'{s:.3f}' for s in eager['runs_s'])} / "
            f"{', '.join(f'{s:.3f}' for s in compiled['runs_s'])} |"
        )
    return rows


def _target(what: str, measured: str, met: bool) -> str:
    return f"- Target: {what}: {measured}: met {yes_no(met)}."


def _targets(record: dict) -> list[str]:
    """The issue's targets, met or not, for the shipped architecture."""
    lines, budgets, targets = [], record.get("budgets", []), COMPILE_TARGETS
    if budgets:
        best = max(budgets, key=lambda b: b["compiled"]["records_per_s"])
        rate = best["compiled"]["records_per_s"]
        speedup = rate / max(b["eager"]["records_per_s"] for b in budgets)
        lines.append(
            _target(
                f"compiled >= {targets['records_per_s']:,.0f} records/s at the best budget",
                f"{rate:,.0f} (toks_per_batch {best['toks_per_batch']})",
                rate >= targets["records_per_s"],
            )
        )
        lines.append(
            _target(
                f">= {targets['speedup_best']}x the best eager",
                f"{speedup:.2f}x",
                speedup >= targets["speedup_best"],
            )
        )
        for at_2048 in [b for b in budgets if b["toks_per_batch"] == 2048]:
            lines.append(
                _target(
                    f"at 2048 compiled >= {targets['speedup_2048']}x eager",
                    f"{at_2048['speedup']:.2f}x",
                    at_2048["speedup"] >= targets["speedup_2048"],
                )
            )
    measured = [  # (what, seconds, the target it must not exceed)
        ("first compile", record.get("first_compile", {}).get("compile_s"), "first_compile_s"),
        ("warm start", record.get("warm_start", {}).get("graphs_ready_s"), "warm_start_s"),
    ]
    for what, seconds, limit in measured:
        if seconds is not None:
            lines.append(
                _target(
                    f"{what} <= {targets[limit]:.0f} s",
                    f"{seconds:.1f} s",
                    seconds <= targets[limit],
                )
            )
    cosine = record.get("fidelity", {}).get("min_cosine")
    if cosine is not None:
        lines.append(
            _target(
                f"compiled {record['fidelity']['dtype']} vs float32 min cosine >= "
                f"{targets['min_cosine']}",
                f"{cosine:.6f}",
                cosine >= targets["min_cosine"],
            )
        )
    return lines


def _architecture_notes(record: dict) -> list[str]:
    arch = record["architecture"]
    name = NAMES.get(arch, arch)
    forward = record.get("forward", {})
    shapes = "dynamic widths" if forward.get("dynamic_width") else "a static width per bucket"
    notes = [f"- {name}: backend {forward.get('backend')}, {shapes}."]
    first = record.get("first_compile")
    if first:
        graphs = ", ".join(f"{k} {v:.0f} s" for k, v in first["first_calls_s"].items())
        state = "" if first["compiled"] else f" FELL BACK TO EAGER: {first['failure']}"
        notes.append(
            f"  - First compile (empty cache): {first['graphs']} graphs in "
            f"{first['compile_s']:.0f} s ({graphs}); first run of the workload "
            f"{first['first_run_s']:.0f} s.{state}"
        )
    if record.get("later_graphs"):
        notes.append(f"  - Graphs compiled after the first run: {record['later_graphs']}.")
    for name in ("warm_start", "fidelity"):
        if "error" in record.get(name, {}):
            notes.append(f"  - {name}: **error**: {record[name]['error']}")
    warm = record.get("warm_start")
    if warm and "error" not in warm:
        notes.append(
            f"  - Warm start (new process, same cache): {len(warm['first_calls'])} graphs "
            f"ready in {warm['graphs_ready_s']:.1f} s; model built in {warm['build_s']:.1f} s; "
            f"whole process {warm['process_s']:.0f} s."
        )
    fidelity = record.get("fidelity")
    if fidelity and "error" not in fidelity:
        notes.append(
            f"  - Compiled {fidelity['dtype']} vs eager float32 (same weights), "
            f"{fidelity['records']:,} records: min cosine {fidelity['min_cosine']:.6f}, mean "
            f"{fidelity['mean_cosine']:.6f}, max abs diff {fidelity['max_abs_diff']:.2e}."
        )
    if record.get("skipped"):
        notes.append(f"  - Skipped for time: {', '.join(record['skipped'])}.")
    if arch == SHIPPED:
        notes += [f"  {line}" for line in _targets(record)]
    return notes


def render_compile(result: dict) -> list[str]:
    """The table of every architecture and budget, then each architecture's notes."""
    lines = [
        f"- Workload: {result['records']:,} proteins (lengths 99-166), seed {result['seed']}; "
        "ours end to end, eager vs `--compile`, best of interleaved runs. Padding: extra "
        "padded tokens from rounding widths to buckets. Targets refer to the FastESM "
        "stand-in, the architecture that ships.",
        "",
        "| architecture | toks_per_batch | eager records/s | compiled records/s | speedup "
        "| padding | peak GiB eager / compiled | runs s eager / compiled |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for record in result["architectures"]:
        lines += _budget_rows(record["architecture"], record.get("budgets", []))
        notes += _architecture_notes(record)
    if result.get("skipped"):
        notes.append(f"- Architectures skipped for time: {', '.join(result['skipped'])}.")
    return [*lines, "", *notes]
