"""Length-sorted, padded-token-budget batches and their collation into model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fastesm_extract.model.tokens import EsmAlphabet

SPECIAL_TOKENS_PER_SEQUENCE = 2  # <cls> and <eos>


def make_batches(token_counts: Sequence[int], toks_per_batch: int) -> list[list[int]]:
    """Group sequence indices so that `longest_in_batch * count <= toks_per_batch`.

    `token_counts` include the special tokens. Sequences are taken shortest first (stable for
    ties, so the result depends only on the file); one longer than the budget goes alone.
    """
    order = sorted(range(len(token_counts)), key=token_counts.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so the newcomer is the longest of the batch.
        if current and token_counts[index] * (len(current) + 1) > toks_per_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class BatchInputs:
    """Model inputs for one batch; `rows` are record indices within the file."""

    # Everything the device needs is built here, on the reader thread, so the device thread
    # only copies and computes.
    rows: list[int]
    row_index: torch.Tensor  # (b,) int64: `rows` as a tensor, to place results without a sync
    input_ids: torch.Tensor  # (b, l) int64: <cls> residues <eos> <pad>...
    attention_mask: torch.Tensor  # (b, l) int64: 1 from <cls> to <eos>
    residue_mask: torch.Tensor  # (b, 1, l) float32: 1.0 on residues only
    residue_counts: torch.Tensor  # (b, 1) float32: residues per row

    def pin_memory(self) -> BatchInputs:
        """Page-locked copies, so host-to-GPU transfers can be asynchronous."""
        return BatchInputs(
            self.rows,
            *(
                tensor.pin_memory()
                for tensor in (
                    self.row_index,
                    self.input_ids,
                    self.attention_mask,
                    self.residue_mask,
                    self.residue_counts,
                )
            ),
        )


def collate(alphabet: EsmAlphabet, tokens: Sequence[np.ndarray], rows: list[int]) -> BatchInputs:
    """Pad the residue tokens of `rows` into one `<cls> ... <eos>` batch."""
    counts = np.fromiter((len(tokens[row]) for row in rows), dtype=np.int64, count=len(rows))
    width = int(counts.max()) + SPECIAL_TOKENS_PER_SEQUENCE
    input_ids = np.full((len(rows), width), alphabet.pad_id, dtype=np.int64)
    input_ids[:, 0] = alphabet.cls_id
    for position, row in enumerate(rows):
        residues = tokens[row]
        input_ids[position, 1 : len(residues) + 1] = residues
    input_ids[np.arange(len(rows)), counts + 1] = alphabet.eos_id
    positions = np.arange(width)  # (l,)
    attention_mask = positions < (counts + SPECIAL_TOKENS_PER_SEQUENCE)[:, None]  # (b, l)
    residue_mask = (positions >= 1) & (positions <= counts[:, None])  # (b, l)
    return BatchInputs(
        rows,
        torch.tensor(rows, dtype=torch.int64),
        torch.from_numpy(input_ids),
        torch.from_numpy(attention_mask.astype(np.int64)),
        torch.from_numpy(residue_mask.astype(np.float32)).unsqueeze(1),
        torch.from_numpy(counts.astype(np.float32)).unsqueeze(1),
    )
