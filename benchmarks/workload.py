"""The benchmark workload: synthetic VirNucPro-like FASTA files and their batches.

FASTA files of `records` proteins each, lengths uniform in 99-166 residues (VirNucPro's
300/500 bp chunk proteins), the 20 standard amino acids, one-line sequences, IDs like
`read_1_42_chunk_1R2`, generated from a fixed seed. Every variant of every mode runs the same
batches (`fastesm_extract.extract.batching.make_batches`) of these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import EsmTokenizer

from fastesm_extract.demo import ESM_VOCAB
from fastesm_extract.extract.batching import make_batches

AMINO_ACIDS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
MIN_LENGTH, MAX_LENGTH = 99, 166  # residues, uniform, as VirNucPro's 300/500 bp chunk proteins
SPECIALS = 2  # <cls> and <eos>
TRUNCATION = 1024  # residues; longer sequences are cut (none are in this workload)


@dataclass(frozen=True)
class Workload:
    """Synthetic FASTA files and, for the floor and FLOP counts, their parsed sequences."""

    files: list[Path]
    records_per_file: int
    seed: int

    @property
    def n_records(self) -> int:
        return len(self.files) * self.records_per_file


def write_workload(folder: Path, n_files: int, n_records: int, seed: int) -> Workload:
    """`output_1.fa` ... `output_N.fa`, each `n_records` proteins, deterministic in `seed`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(1, n_files + 1):
        rng = np.random.default_rng([seed, number])
        lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n_records)
        residues = AMINO_ACIDS[rng.integers(0, len(AMINO_ACIDS), size=int(lengths.sum()))]
        text = residues.tobytes()
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends[:-1]]
        chunks = []
        for index, (start, end) in enumerate(zip(starts, ends)):
            strand = "F" if index % 6 < 3 else "R"
            header = f">read_{number}_{index // 6}_chunk_1{strand}{index % 3 + 1}\n"
            chunks.append(header.encode() + text[start:end] + b"\n")
        path = folder / f"output_{number}.fa"
        path.write_bytes(b"".join(chunks))
        files.append(path)
    return Workload(files, n_records, seed)


def write_tokenizer(folder: Path) -> EsmTokenizer:
    """The ESM2 tokenizer (the vocabulary FastESM2_650 and the demo checkpoint share)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(ESM_VOCAB) + "\n")
    return EsmTokenizer(vocab_file=str(vocab))


def parse_fasta_simple(path: Path) -> list[tuple[str, str]]:
    """(ID, sequence) pairs: ID up to the first whitespace, sequence upper-cased, no '*'."""
    records: list[tuple[str, str]] = []
    label: str | None = None
    parts: list[str] = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                if label is not None:
                    records.append((label, "".join(parts).upper().removesuffix("*")))
                label, parts = line[1:].split()[0], []
            elif line:
                parts.append(line)
    if label is not None:
        records.append((label, "".join(parts).upper().removesuffix("*")))
    return records


@dataclass(frozen=True)
class BatchPlan:
    """The batches every variant runs, tokenized and on the device, with their token counts."""

    # Per batch: input_ids (b, l), attention_mask (b, l), residue mask (b, 1, l) float32 (no
    # <cls>/<eos>/padding) and residue counts (b, 1) float32, what pooling needs.
    inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    shapes: list[tuple[int, int]]  # (rows, padded width) per batch
    real_tokens: int  # tokens including <cls>/<eos>, excluding padding

    @property
    def padded_tokens(self) -> int:
        return sum(rows * width for rows, width in self.shapes)


def plan_batches(
    workload: Workload, tokenizer: EsmTokenizer, toks_per_batch: int, device: torch.device
) -> BatchPlan:
    inputs, shapes, real = [], [], 0
    for fasta in workload.files:
        sequences = [sequence[:TRUNCATION] for _, sequence in parse_fasta_simple(fasta)]
        real += sum(len(s) + SPECIALS for s in sequences)
        for rows in make_batches([len(s) + SPECIALS for s in sequences], toks_per_batch):
            encoded = tokenizer([sequences[r] for r in rows], padding=True, return_tensors="pt")
            ids, attention = encoded["input_ids"], encoded["attention_mask"]  # (b, l)
            residues = attention.clone()
            residues[:, 0] = 0  # <cls>
            residues[torch.arange(len(rows)), attention.sum(1) - 1] = 0  # <eos>
            counts = residues.sum(1, keepdim=True).float()  # (b, 1)
            batch = (ids, attention, residues.unsqueeze(1).float(), counts)
            inputs.append(tuple(t.to(device) for t in batch))
            shapes.append((int(ids.shape[0]), int(ids.shape[1])))
    return BatchPlan(inputs, shapes, real)
