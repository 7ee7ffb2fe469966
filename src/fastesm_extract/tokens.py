"""ESM alphabet -> token ids, vectorized over a whole file; proven equal to `EsmTokenizer`.

The ESM alphabet has one character per residue token, so tokenizing is a byte lookup table.
The one subtlety copied from `EsmTokenizer`: a run of consecutive characters outside the
vocabulary becomes a single `<unk>` (its trie leaves the run as one unknown word).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A probe covering every residue token, '-', '.', and unknown runs; checked against the
# checkpoint's own tokenizer when an alphabet is built, so an unusual vocabulary fails loudly.
_PROBE = "LAGVSERTIDPKQNFYMHWCXBUZO-.JJMJ"


class TokenizerMismatchError(ValueError):
    """The checkpoint's tokenizer does not behave like the one-character ESM alphabet."""


@dataclass(frozen=True)
class EsmAlphabet:
    """Token ids of the special tokens and a 256-entry byte -> id table."""

    cls_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    byte_to_id: np.ndarray  # (256,) int64

    @classmethod
    def from_tokenizer(cls, tokenizer) -> EsmAlphabet:
        """Build from a Hugging Face ESM tokenizer and check it against that tokenizer."""
        vocab = tokenizer.get_vocab()
        unk_id = tokenizer.unk_token_id
        table = np.full(256, unk_id, dtype=np.int64)
        for token, token_id in vocab.items():
            if len(token) == 1 and ord(token) < 128:
                table[ord(token)] = token_id
        alphabet = cls(
            cls_id=tokenizer.cls_token_id,
            eos_id=tokenizer.eos_token_id,
            pad_id=tokenizer.pad_token_id,
            unk_id=unk_id,
            byte_to_id=table,
        )
        expected = list(tokenizer(_PROBE)["input_ids"])
        ours = [alphabet.cls_id, *alphabet.encode([_PROBE.encode()])[0].tolist(), alphabet.eos_id]
        if ours != expected:
            raise TokenizerMismatchError(
                "the checkpoint's tokenizer is not a one-character-per-residue ESM tokenizer "
                f"(expected {expected}, vectorized encoding gave {ours})"
            )
        return alphabet

    def encode(
        self, sequences: Sequence[bytes], truncation_seq_length: int | None = None
    ) -> list[np.ndarray]:
        """Residue token ids (no `<cls>`/`<eos>`) for each cleaned, non-empty sequence."""
        if not sequences:
            return []
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        ids = self.byte_to_id[np.frombuffer(b"".join(sequences), dtype=np.uint8)]  # (total,)
        starts = np.zeros(len(ids), dtype=bool)
        starts[np.cumsum(lengths)[:-1]] = True
        starts[0] = True
        unknown = ids == self.unk_id
        # Drop every <unk> that continues a run of unknowns within the same sequence.
        repeat = unknown & np.concatenate(([False], unknown[:-1])) & ~starts
        if repeat.any():
            keep = ~repeat
            ids = ids[keep]
            lengths = np.add.reduceat(keep.astype(np.int64), np.flatnonzero(starts))
        pieces = np.split(ids, np.cumsum(lengths)[:-1])
        if truncation_seq_length is not None:
            pieces = [piece[:truncation_seq_length] for piece in pieces]
        return pieces
