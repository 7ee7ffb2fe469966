"""gpu_check's records (its JSON) -> the GPU section (d) of BENCHMARKS.md.

Renders partial records too: a step that failed or never ran is named, the others shown.
`python3 benchmarks/report.py --gpu-json "$OUT/gpu_check.json"` writes it into BENCHMARKS.md.
"""

from __future__ import annotations

from markdown import yes_no
from report_compile import render_compile

GPU_TARGETS = {"vs_floor_2048": 1.10, "records_per_s": 2_500.0, "fp16_min_cosine": 0.9999}
FLOP_FORMULA = (
    "forward FLOPs of the padded batches: 2 x non-embedding parameters per token, plus "
    "4 x layers x hidden x width per token for QK^T and AV"
)


def step(check: dict, name: str) -> tuple[dict | None, list[str]]:
    """A step's result, or the line saying why there is none."""
    entry = check.get("steps", {}).get(name)
    if entry is None:
        return None, [f"- {name}: not run."]
    if entry.get("status") not in ("ok", "running"):
        return None, [f"- {name}: **{entry.get('status')}**: {entry.get('error', '')}"]
    return entry.get("result"), []


def render_environment(check: dict) -> list[str]:
    env, settings = check.get("environment", {}), check.get("settings", {})
    model = settings.get("model", {})
    return [
        f"- Measured: {env.get('date')}; `{env.get('command')}`"
        + (f"; {check['total_s']:.0f} s in all" if "total_s" in check else ""),
        f"- Machine: GPU {env.get('gpu', 'none')} ({env.get('gpu_memory_gib', '?')} GiB, "
        f"{env.get('multiprocessors', '?')} SMs, nvidia-smi: {env.get('nvidia_smi', '?')}); "
        f"{env.get('cpu_cores')} CPU cores; torch {env.get('torch')} (CUDA {env.get('cuda')}, "
        f"cuDNN {env.get('cudnn')}); transformers {env.get('transformers')}; Python "
        f"{env.get('python')}; fastesm-extract ({env.get('source')})",
        f"- Model: transformers `EsmModel` {model.get('layers')} layers x {model.get('hidden')}, "
        f"{model.get('heads')} heads, intermediate {model.get('intermediate')}, rotary, "
        f"{model.get('dtype')}, SDPA, random weights (FastESM2_650's shape); the compile "
        "step runs each architecture it names"
        + (" - SMOKE RUN, not a measurement" if settings.get("smoke") else ""),
    ]


def render_tests(check: dict) -> list[str]:
    result, missing = step(check, "tests")
    if result is None:
        return missing
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result["counts"].items()))
    lines = [f"- `pytest tests/test_cuda.py`: {counts} (exit {result['exit_code']})."]
    for case in result["cases"]:
        if case["outcome"] in ("failed", "error"):
            lines.append(f"  - {case['name']}: {case['outcome']}: {case['message']}")
        for key, value in case["properties"].items():
            lines.append(f"  - {case['name']}: `{key}` = {value}")
    return lines


def render_ceilings(check: dict) -> list[str]:
    result, missing = step(check, "ceilings")
    if result is None:
        return missing
    return [
        f"- Ceilings measured on the card: {result['matmul_dtype']} matrix product "
        f"{result['matmul_n']}^3 on random data {result['matmul_tflops']:.0f} TFLOP/s; "
        f"device-to-device copy {result['copy_gb_s']:,.0f} GB/s (bytes read + written)."
    ]


def render_fidelity(check: dict) -> list[str]:
    result, missing = step(check, "fidelity")
    if result is None:
        return missing
    lines = [
        f"- Fidelity: {result['records']:,} records through `extract_fast_esm`, against "
        f"{result['reference']} (TF32 matmul {'on' if result['tf32_matmul'] else 'off'}; "
        f"mean |embedding| {result['mean_abs_reference']:.3g}):",
        "",
        "| dtype | min cosine | mean cosine | max abs diff | max relative L2 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("float16", "bfloat16"):
        row = result[name]
        lines.append(
            f"| {name} | {row['min_cosine']:.6f} | {row['mean_cosine']:.6f} | "
            f"{row['max_abs_diff']:.2e} | {row['max_relative_l2']:.2e} |"
        )
    cosine = result["float16"]["min_cosine"]
    target = GPU_TARGETS["fp16_min_cosine"]
    return lines + [
        "",
        f"- Target: minimum cosine fp16 vs fp32 >= {target}: {cosine:.6f}: met "
        f"{yes_no(cosine >= target)}.",
    ]


def render_attention(check: dict) -> list[str]:
    result, missing = step(check, "attention")
    if result is None:
        return missing
    ops = ", ".join(f"`{name}` x {n}" for name, n in sorted(result["ops"].items()))
    return [f"- Attention dispatched (profiler, one fidelity extraction, fp16): {ops}."]


def render_bench(check: dict) -> list[str]:
    result, missing = step(check, "bench")
    if result is None:
        return missing
    peaks = result["peaks_tflops"]
    peak_text = "; ".join(f"{key} {value:.0f} TFLOP/s" for key, value in peaks.items() if value)
    lines = [
        f"- Workload: {result['files']} file(s) x {result['records_per_file']:,} proteins, "
        f"lengths uniform 99-166, seed {result['seed']}; best of up to "
        f"{result['repeats_asked']} interleaved runs per variant.",
        f"- MFU = {FLOP_FORMULA} / time / peak ({peak_text or 'no peak known'}). tokens/s counts "
        "<cls>/<eos>, not padding. Peak mem = `torch.cuda.max_memory_allocated` in the run; "
        "CPU s = this process's CPU time in the run (all threads).",
        "",
        "| toks_per_batch | variant | best s | records/s | tokens/s | TFLOP/s | MFU "
        "| peak mem GiB | CPU s | vs floor | runs (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    best_rate = 0.0
    for budget in result["budgets"]:
        for name, v in budget["variants"].items():
            mfu = "/".join(f"{100 * m:.1f}%" for m in v["mfu"].values()) or "n/a"
            ratio = f"{v['vs_floor']:.3f}x" if v["vs_floor"] else "n/a"
            lines.append(
                f"| {budget['toks_per_batch']} | {name} | {v['best_s']:.3f} | "
                f"{v['records_per_s']:,.0f} | {v['tokens_per_s']:,.0f} | {v['tflops']:.0f} | "
                f"{mfu} | {v['peak_gib']:.2f} | {v['cpu_s']:.1f} | {ratio} | "
                f"{', '.join(f'{s:.3f}' for s in v['runs_s'])} |"
            )
            if name == "ours":
                best_rate = max(best_rate, v["records_per_s"])
        agreement = budget.get("agreement") or {}
        agreement_text = (
            f"ours vs baseline: {agreement.get('error') or 'not compared'}"
            if agreement.get("error") or "records" not in agreement
            else f"ours vs baseline: {agreement['records']:,} records, IDs "
            f"{'identical' if agreement['proteins_equal'] else 'DIFFERENT'}, max abs diff "
            f"{agreement['max_abs_diff']:.2e}"
        )
        notes.append(
            f"- toks_per_batch {budget['toks_per_batch']}: {budget['batches']:,} batches, "
            f"{budget['real_tokens']:,} tokens ({budget['padded_tokens']:,} padded), "
            f"{budget['flops'] / 1e12:,.0f} TFLOP; {agreement_text}."
        )
        ours = budget["variants"].get("ours", {})
        if budget["toks_per_batch"] == 2048 and ours.get("vs_floor"):
            target = GPU_TARGETS["vs_floor_2048"]
            notes.append(
                f"- Target: ours <= {target:.2f}x the floor at 2048: {ours['vs_floor']:.3f}x: "
                f"met {yes_no(ours['vs_floor'] <= target)}."
            )
    if result["budgets"]:
        target = GPU_TARGETS["records_per_s"]
        notes.append(
            f"- Target: ours >= {target:,.0f} records/s at the best budget: {best_rate:,.0f}: "
            f"met {yes_no(best_rate >= target)}."
        )
    if result["skipped_budgets"]:
        notes.append(f"- Skipped for time: toks_per_batch {result['skipped_budgets']}.")
    if len(peaks) > 1:
        notes.append(f"- MFU columns: against {' / '.join(peaks)} peak.")
    return lines + ["", *notes]


STEP_RENDERERS = {
    "fidelity": render_fidelity,
    "attention": render_attention,
    "ceilings": render_ceilings,
    "tests": render_tests,
}


def render_gpu(check: dict) -> list[str]:
    """The GPU section: environment, benchmark, then fidelity, attention, ceilings, tests;
    a step neither asked for (settings' `steps`) nor recorded is left out."""
    asked = set(check.get("settings", {}).get("steps", ["bench", *STEP_RENDERERS]))
    asked |= set(check.get("steps", {}))
    lines = ["### (d) GPU: FastESM2_650-shaped model, random weights (benchmarks/gpu_check.py)"]
    lines += ["", *render_environment(check), ""]
    if "bench" in asked:
        lines += ["#### Benchmark", "", *render_bench(check), ""]
    if "compile" in asked:
        body = compile_lines(check)
        lines += ["#### Compiled forward (--compile), by architecture", "", *body, ""]
    others = [name for name in STEP_RENDERERS if name in asked]
    if others:
        lines += [f"#### {', '.join(others).capitalize()}", ""]
        for name in others:
            lines += STEP_RENDERERS[name](check)
    return lines


def compile_lines(check: dict) -> list[str]:
    """The compile step's lines; a step that failed midway shows what it measured first."""
    result, missing = step(check, "compile")
    partial = check.get("steps", {}).get("compile", {}).get("partial")
    if result is None and partial:
        return [*missing, "", *render_compile(partial)]
    return missing if result is None else render_compile(result)


def render_gpu_compile(check: dict) -> list[str]:
    """The compile step alone, for its own BENCHMARKS.md section (e)."""
    lines = ["### (e) GPU: compiled forward (--compile), by architecture (gpu_check.py compile)"]
    lines += ["", *render_environment(check), "", *compile_lines(check)]
    for name in ("tests", "ceilings"):  # run beside it by default: kept with it
        if name in check.get("steps", {}):
            lines += ["", *STEP_RENDERERS[name](check)]
    return lines


def render_diagnosis(record: dict) -> list[str]:
    """gpu_diagnose's record: what bounds the floor (section "(d) diagnosis")."""
    env, steps = record.get("environment", {}), record.get("steps", {})
    lines = [
        "### (d) diagnosis: what bounds the GPU floor (benchmarks/gpu_diagnose.py)",
        "",
        f"- Measured: {env.get('date')}; GPU {env.get('gpu')}; torch {env.get('torch')}; "
        f"transformers {env.get('transformers')}; same model and workload as (d).",
        "",
        "| floor at toks_per_batch | batches | records/s | TFLOP/s | runs (s) |",
        "|---:|---:|---:|---:|---|",
    ]
    for key in sorted((k for k in steps if k.startswith("floor_")), key=lambda k: int(k[6:])):
        floor = steps[key]
        runs = ", ".join(f"{run:.3f}" for run in floor["runs_s"])
        lines.append(
            f"| {key.removeprefix('floor_')} | {floor['batches']} | "
            f"{floor['records_per_s']:,.0f} | {floor['tflops']:.0f} | {runs} |"
        )
    profile = steps.get("profile_8192", {})
    if "by_kind_s" in profile:
        kinds = profile["by_kind_s"]
        total = profile["kernel_s"]
        shares = ", ".join(
            f"{kind} {seconds:.3f} s ({100 * seconds / total:.0f}%)"
            for kind, seconds in sorted(kinds.items(), key=lambda item: -item[1])
        )
        top = "; ".join(
            f"`{name[:60]}` {seconds:.3f} s" for name, seconds in profile["top_kernels_s"][:5]
        )
        lines += [
            "",
            f"- Profile of the first {profile['batches']} batches at 8192: GPU busy "
            f"{100 * profile['gpu_busy_share']:.0f}% of wall time ({profile['kernel_s']:.3f} s "
            f"of kernels in {profile['wall_s']:.3f} s), {profile['launches_per_batch']:.0f} "
            f"kernel launches per batch. Kernel time by kind: {shares}.",
            f"- Heaviest kernels: {top}.",
        ]
    compiled = steps.get("compiled_8192")
    if compiled:
        if "error" in compiled:
            lines.append(f"- torch.compile'd floor: failed: {compiled['error']}")
        else:
            rate = compiled.get("records_per_s")
            lines.append(
                f"- torch.compile(model, dynamic=True): first pass (compiling) "
                f"{compiled['first_pass_s']:.0f} s; max abs difference from the eager fp16 "
                f"floor {compiled['max_abs_diff_vs_eager']:.1e}; "
                + (f"{rate:,.0f} records/s." if rate else "timed runs skipped (deadline).")
            )
    return lines
