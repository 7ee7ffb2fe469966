"""CUDA behaviour: run where a GPU is visible, skipped with a reason elsewhere.

Measured errors are recorded with `record_property`, so `benchmarks/gpu_check.py` (which runs
this file with `--junitxml`) can report them beside the tolerances below.
"""

import logging
from collections import Counter

import pytest
import torch
from helpers import random_proteins, write_fasta
from torch.profiler import ProfilerActivity, profile

from fastesm_extract import extract_fast_esm, extract_files, load_embeddings, load_model
from fastesm_extract.extract.batching import make_batches

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# float16 forward, float32 pooling, against the CPU in float32. Measured on an NVIDIA H200
# (2026-11-27, torch 2.11): 6.5e-4 for float16, 5.0e-3 for bfloat16; the limits are ~3x that.
FP16_MAX_ABS_DIFF = 2e-3
BF16_MAX_ABS_DIFF = 1.6e-2  # bfloat16 keeps 3 fewer mantissa bits than float16: 8x
TINY_LAYERS = 2  # conftest.TINY
SDPA_OP = "aten::scaled_dot_product_attention"
SDPA_MATH_OP = "aten::_scaled_dot_product_attention_math"


def test_cuda_defaults_to_float16_and_sdpa(tiny_checkpoint):
    loaded = load_model(str(tiny_checkpoint), device="cuda")
    assert loaded.dtype == torch.float16 and loaded.device.type == "cuda"
    assert loaded.model.config._attn_implementation == "sdpa"
    assert load_model(str(tiny_checkpoint), device="cuda", dtype="bfloat16").dtype == (
        torch.bfloat16
    )


def attention_ops(action) -> Counter:
    """Names and counts of the scaled-dot-product-attention operators `action()` dispatched."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        action()
    return Counter(e.name for e in profiler.events() if "scaled_dot_product" in e.name)


def test_cuda_every_layer_runs_a_fused_sdpa_kernel(tiny_checkpoint, tmp_path, record_property):
    # What runs, not what the config says: every layer of every batch dispatches torch's SDPA,
    # and it lands on a fused CUDA kernel (flash, memory-efficient or cuDNN), never the
    # unfused math fallback that materializes the (l, l) attention matrix.
    proteins = random_proteins(40, 5, 400, seed=7)
    fasta = write_fasta(tmp_path / "p.fa", proteins)
    gpu = load_model(str(tiny_checkpoint), device="cuda")
    batches = make_batches([len(sequence) + 2 for _, sequence in proteins], 2048)
    ops = attention_ops(lambda: extract_fast_esm(fasta, model=gpu))
    record_property("sdpa_ops", dict(ops))
    assert ops[SDPA_OP] == TINY_LAYERS * len(batches)
    assert ops[SDPA_MATH_OP] == 0
    fused = {name: n for name, n in ops.items() if name not in (SDPA_OP, SDPA_MATH_OP)}
    assert fused and all(name.startswith("aten::_scaled_dot_product_") for name in fused)
    assert max(fused.values()) >= ops[SDPA_OP]


def max_abs_diff_against_cpu(checkpoint, cpu_model, fasta, dtype: str) -> float:
    gpu = load_model(str(checkpoint), device="cuda", dtype=dtype)
    ids_gpu, data_gpu = extract_fast_esm(fasta, model=gpu)
    ids_cpu, data_cpu = extract_fast_esm(fasta, model=cpu_model)
    assert ids_gpu == ids_cpu
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in data_gpu)
    return float((torch.stack(data_gpu) - torch.stack(data_cpu)).abs().max())


def test_cuda_float16_embeddings_match_cpu_float32(
    tiny_checkpoint, tiny_model, tmp_path, record_property
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(50, 1, 700, seed=5))
    difference = max_abs_diff_against_cpu(tiny_checkpoint, tiny_model, fasta, "float16")
    record_property("fp16_max_abs_diff", difference)
    record_property("fp16_tolerance", FP16_MAX_ABS_DIFF)
    assert difference < FP16_MAX_ABS_DIFF


def test_cuda_bfloat16_embeddings_match_cpu_float32(
    tiny_checkpoint, tiny_model, tmp_path, record_property
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(50, 1, 700, seed=5))
    difference = max_abs_diff_against_cpu(tiny_checkpoint, tiny_model, fasta, "bfloat16")
    record_property("bf16_max_abs_diff", difference)
    record_property("bf16_tolerance", BF16_MAX_ABS_DIFF)
    assert difference < BF16_MAX_ABS_DIFF


def test_cuda_float32_matches_cpu_closely(tiny_checkpoint, tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(30, 1, 400, seed=6))
    gpu = load_model(str(tiny_checkpoint), device="cuda", dtype="float32")
    data_gpu = torch.stack(extract_fast_esm(fasta, model=gpu)[1])
    data_cpu = torch.stack(extract_fast_esm(fasta, model=tiny_model)[1])
    assert (data_gpu - data_cpu).abs().max() < 1e-4


def test_cuda_many_files_are_bitwise_reproducible(tiny_checkpoint, tmp_path):
    for part in range(3):
        (tmp_path / "in").mkdir(exist_ok=True)
        write_fasta(tmp_path / "in" / f"f{part}.fa", random_proteins(40, 5, 300, seed=part))
    gpu = load_model(str(tiny_checkpoint), device="cuda")
    extract_files([tmp_path / "in"], tmp_path / "a", model=gpu, show_progress=False)
    extract_files([tmp_path / "in" / "f1.fa"], tmp_path / "b", model=gpu, show_progress=False)
    assert (tmp_path / "a" / "f1_ESM.pt").read_bytes() == (
        tmp_path / "b" / "f1_ESM.pt"
    ).read_bytes()
    assert len(load_embeddings(tmp_path / "a" / "f0_ESM.pt", 32)[0]) == 40


def peak_reserved(action) -> int:
    """Most bytes the caching allocator held from CUDA while `action()` ran, from empty."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    action()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_reserved()


def test_cuda_out_of_memory_splits_the_batch_and_retries(
    tmp_path, caplog, record_property, tmp_path_factory
):
    # A real CUDA out-of-memory: the allocator is capped between what one batch of all the
    # records needs and what half of them need, so the whole batch fails and its halves fit.
    from fastesm_extract.demo import build_demo_checkpoint

    checkpoint = build_demo_checkpoint(tmp_path_factory.mktemp("oom-esm"), seed=3)  # 6 x 320
    n, length = 64, 1000  # equal lengths: a half batch is exactly the batch of half the budget
    proteins = random_proteins(n, length, length, seed=11)
    fasta = write_fasta(tmp_path / "p.fa", proteins)
    gpu = load_model(str(checkpoint), device="cuda")
    whole, half = n * (length + 2), n // 2 * (length + 2)
    expected = torch.stack(extract_fast_esm(fasta, model=gpu, toks_per_batch=half)[1])  # warm
    need_whole = peak_reserved(lambda: extract_fast_esm(fasta, model=gpu, toks_per_batch=whole))
    need_half = peak_reserved(lambda: extract_fast_esm(fasta, model=gpu, toks_per_batch=half))
    record_property("oom_reserved_bytes_whole_half", [need_whole, need_half])
    assert need_whole > need_half * 1.2, "the batch is too small to separate the two budgets"
    cap = (need_whole + need_half) // 2
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
            ids, data = extract_fast_esm(fasta, model=gpu, toks_per_batch=whole)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    splits = caplog.text.count("CUDA out of memory on a batch of")
    difference = float((torch.stack(data) - expected).abs().max())
    record_property("oom_splits_and_max_abs_diff", [splits, difference])
    assert f"CUDA out of memory on a batch of {n} sequences; splitting it" in caplog.text
    assert ids == [label for label, _ in proteins]
    # The halves are the batches of the `half` budget: the same values, up to kernel choice.
    assert difference < FP16_MAX_ABS_DIFF


def test_cuda_compiled_forward_matches_eager_and_is_bitwise_reproducible(
    tiny_checkpoint, tiny_model, tmp_path, record_property
):
    # --compile on the card, one width bucket (66-76 residues: widths to 80) so it
    # compiles one graph: near eager float16, within the float16 limit of CPU float32, and
    # the same bytes alone or after another file (each run traced from a fresh dynamo).
    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(2):
        write_fasta(folder / f"f{part}.fa", random_proteins(30 + 9 * part, 66, 76, seed=part))
    gpu = load_model(str(tiny_checkpoint), device="cuda")
    options = {"model": gpu, "show_progress": False, "toks_per_batch": 600}
    torch._dynamo.reset()
    extract_files([folder], tmp_path / "together", compile=True, **options)
    torch._dynamo.reset()
    extract_files([folder / "f1.fa"], tmp_path / "alone", compile=True, **options)
    extract_files([folder / "f1.fa"], tmp_path / "eager", **options)
    together = (tmp_path / "together" / "f1_ESM.pt").read_bytes()
    assert (tmp_path / "alone" / "f1_ESM.pt").read_bytes() == together
    compiled = torch.stack(load_embeddings(tmp_path / "together" / "f1_ESM.pt")[1])
    eager = torch.stack(load_embeddings(tmp_path / "eager" / "f1_ESM.pt")[1])
    cpu = torch.stack(extract_fast_esm(folder / "f1.fa", model=tiny_model)[1])
    record_property("compiled_fp16_vs_eager_fp16", float((compiled - eager).abs().max()))
    record_property("compiled_fp16_vs_cpu_fp32", float((compiled - cpu).abs().max()))
    assert (compiled - cpu).abs().max() < FP16_MAX_ABS_DIFF
    assert '"compiled": true' in (tmp_path / "together" / "f1_ESM.pt.json").read_text()
