"""CUDA behaviour (SPEC 6): run where a GPU is visible, skipped with a reason elsewhere."""

import pytest
import torch
from helpers import random_proteins, write_fasta

from fastesm_extract import extract_fast_esm, extract_files, load_embeddings, load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_defaults_to_float16_and_sdpa(tiny_checkpoint):
    loaded = load_model(str(tiny_checkpoint), device="cuda")
    assert loaded.dtype == torch.float16 and loaded.device.type == "cuda"
    assert loaded.model.config._attn_implementation == "sdpa"
    assert load_model(str(tiny_checkpoint), device="cuda", dtype="bfloat16").dtype == (
        torch.bfloat16
    )


def test_cuda_float16_embeddings_match_cpu_float32(tiny_checkpoint, tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(50, 1, 700, seed=5))
    gpu = load_model(str(tiny_checkpoint), device="cuda")
    ids_gpu, data_gpu = extract_fast_esm(fasta, model=gpu)
    ids_cpu, data_cpu = extract_fast_esm(fasta, model=tiny_model)
    assert ids_gpu == ids_cpu
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in data_gpu)
    difference = (torch.stack(data_gpu) - torch.stack(data_cpu)).abs().max()
    assert difference < 2e-2  # float16 forward, float32 pooling


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
