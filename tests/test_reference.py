"""Reference tests: our embeddings equal the original VirNucPro/fair-esm pipeline.

A small random fair-esm ESM2 is converted to a Hugging Face checkpoint once per module; the
conversion is checked on its own, then `extract_fast_esm` is compared record by record with
`original_extract`, a re-implementation of VirNucPro's `extract_esm()`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import transformers
from esm.data import Alphabet
from esm.model.esm2 import ESM2
from oracle_fair_esm import convert_fair_esm_to_hf, make_fair_esm2, original_extract

ATOL = 1e-5  # the embedding definition: fp32 max abs difference
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@dataclass(frozen=True)
class Oracle:
    fair_model: ESM2
    alphabet: Alphabet
    checkpoint: Path
    hf_model: transformers.PreTrainedModel
    hf_tokenizer: transformers.PreTrainedTokenizerBase


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    fair_model, alphabet = make_fair_esm2(num_layers=4, embed_dim=64, attention_heads=4, seed=0)
    checkpoint = convert_fair_esm_to_hf(
        fair_model, alphabet, tmp_path_factory.mktemp("tiny_esm2_hf")
    )
    # AutoModel adds a pooler the checkpoint lacks; seeding keeps its unused init reproducible.
    torch.manual_seed(0)
    hf_model = transformers.AutoModel.from_pretrained(
        checkpoint, attn_implementation="sdpa", dtype=torch.float32
    ).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    return Oracle(fair_model, alphabet, checkpoint, hf_model, hf_tokenizer)


def random_protein(rng: random.Random, length: int, n_unknown: int = 0) -> str:
    """A random sequence of standard amino acids with `n_unknown` residues replaced by X."""
    residues = [rng.choice(AMINO_ACIDS) for _ in range(length)]
    for pos in rng.sample(range(length), min(n_unknown, length)):
        residues[pos] = "X"
    return "".join(residues)


def write_fasta(path: Path, records: list[tuple[str, str]], width: int = 60) -> Path:
    """Write records as FASTA with sequences wrapped at `width`, like most real files."""
    with path.open("w") as handle:
        for record_id, seq in records:
            handle.write(f">{record_id}\n")
            for start in range(0, len(seq), width):
                handle.write(seq[start : start + width] + "\n")
    return path


def make_records(lengths: list[int], seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    records = []
    for i, length in enumerate(lengths):
        # Every third record longer than 10 carries a few X (ESM's unknown-residue letter).
        n_unknown = rng.randint(1, 3) if i % 3 == 0 and length > 10 else 0
        records.append((f"prot{i:02d}_len{length}", random_protein(rng, length, n_unknown)))
    return records


def assert_matches_original(
    oracle: Oracle,
    fasta: Path,
    fasta_ids: list[str],
    truncation_seq_length: int,
    toks_per_batch: int,
) -> None:
    from fastesm_extract import extract_fast_esm

    labels, expected = original_extract(
        fasta,
        oracle.fair_model,
        oracle.alphabet,
        truncation_seq_length=truncation_seq_length,
        toks_per_batch=toks_per_batch,
    )
    # The original emits batch (length-sorted) order; make sure the test exercises reordering.
    assert labels != fasta_ids
    assert Counter(labels) == Counter(fasta_ids)

    proteins, data = extract_fast_esm(
        fasta,
        model=oracle.hf_model,
        tokenizer=oracle.hf_tokenizer,
        truncation_seq_length=truncation_seq_length,
        toks_per_batch=toks_per_batch,
    )
    assert proteins == fasta_ids
    assert len(data) == len(proteins)

    expected_by_id = dict(zip(labels, expected, strict=True))
    hidden_size = oracle.fair_model.embed_dim
    for record_id, ours in zip(proteins, data, strict=True):
        assert isinstance(ours, torch.Tensor)
        assert ours.shape == (hidden_size,), record_id
        assert ours.dtype == torch.float32, record_id
        assert ours.device.type == "cpu", record_id
        diff = (ours - expected_by_id[record_id]).abs().max().item()
        assert diff < ATOL, f"{record_id}: max abs diff {diff:.3g}"


def test_conversion_matches_fair_esm_last_layer(oracle: Oracle) -> None:
    rng = random.Random(1)
    # Mixed lengths force padding; one <mask> exercises ESM's token-dropout rescaling.
    seqs = [
        random_protein(rng, 37, n_unknown=2),
        random_protein(rng, 5),
        random_protein(rng, 120),
        random_protein(rng, 10) + "<mask>" + random_protein(rng, 20),
        random_protein(rng, 1),
    ]
    batch_converter = oracle.alphabet.get_batch_converter()
    _, _, toks = batch_converter([(f"s{i}", s) for i, s in enumerate(seqs)])  # (b, l)

    encoded = oracle.hf_tokenizer(seqs, padding=True, return_tensors="pt")
    assert torch.equal(encoded["input_ids"], toks)
    not_pad = toks.ne(oracle.alphabet.padding_idx)  # (b, l)
    assert torch.equal(encoded["attention_mask"].bool(), not_pad)

    assert oracle.hf_model.config._attn_implementation == "sdpa"
    last = oracle.fair_model.num_layers
    with torch.no_grad():
        expected = oracle.fair_model(toks, repr_layers=[last])["representations"][last]
        actual = oracle.hf_model(input_ids=toks, attention_mask=not_pad.long()).last_hidden_state
    assert actual.shape == expected.shape == (len(seqs), toks.shape[1], 64)
    # Padding positions are garbage on both sides; only real tokens must agree.
    diff = (actual - expected).abs()[not_pad].max().item()
    assert diff < ATOL, f"max abs diff {diff:.3g}"


def test_extract_fast_esm_equals_original_extract_esm(oracle: Oracle, tmp_path: Path) -> None:
    rng = random.Random(2)
    lengths = [1, 2, 1023, 1024] + [rng.randint(3, 1022) for _ in range(21)]
    rng.shuffle(lengths)  # FASTA order unrelated to length, hence to batch order
    records = make_records(lengths, seed=3)
    fasta = write_fasta(tmp_path / "proteins.fa", records)

    assert_matches_original(
        oracle,
        fasta,
        [record_id for record_id, _ in records],
        truncation_seq_length=1024,
        toks_per_batch=2048,
    )


def test_extract_fast_esm_equals_original_with_truncation(oracle: Oracle, tmp_path: Path) -> None:
    # Longer than 100 residues: fair-esm keeps <cls> + 100 residues + <eos>, averages 1..100.
    lengths = [150, 1, 99, 100, 101, 2, 400, 57, 1024, 30, 250, 3]
    records = make_records(lengths, seed=4)
    fasta = write_fasta(tmp_path / "proteins.fa", records)

    assert_matches_original(
        oracle,
        fasta,
        [record_id for record_id, _ in records],
        truncation_seq_length=100,
        toks_per_batch=512,
    )
