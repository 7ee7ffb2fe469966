"""ESM alphabet -> token ids, vectorized over a whole file; proven equal to the checkpoint's
own tokenizer when it is loaded.

The ESM alphabet has one character per residue token, so tokenizing is a byte lookup table.
The one thing tokenizers disagree on is a letter outside the vocabulary (e.g. `J`):
- `EsmTokenizer` (lenient) turns a run of them into a single `<unk>` (its trie leaves the
  run as one unknown word);
- a tokenizer may instead give one `<unk>` per letter;
- fair-esm and FastESM2_650's `FastEsmTokenizer` (strict) refuse them with an error.
Which one the checkpoint does is probed once, at load, without failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

# Every residue token, '-' and '.': any ESM tokenizer must accept these, and give our ids.
_KNOWN_PROBE = "LAGVSERTIDPKQNFYMHWCXBUZO-."
# Unknown letters alone, in a run, and between residues: tells the three behaviours apart.
_UNKNOWN_PROBE = "JJMJ"


# How the checkpoint's tokenizer treats a letter outside its vocabulary.
class UnknownLetters(str, Enum):
    """How a checkpoint's tokenizer treats letters outside its vocabulary."""

    RUN_AS_ONE_UNK = "one <unk> per run"  # EsmTokenizer
    LETTER_AS_UNK = "one <unk> per letter"
    REFUSED = "refused"  # fair-esm, FastEsmTokenizer: such a record fails

    def __str__(self) -> str:
        return self.value


# The short names the modules use.
UNKNOWN_RUN_AS_ONE_UNK, UNKNOWN_LETTER_AS_UNK, UNKNOWN_REFUSED = UnknownLetters


class TokenizerMismatchError(ValueError):
    """The checkpoint's tokenizer does not behave like the one-character ESM alphabet."""


@dataclass(frozen=True)
class EsmAlphabet:
    """Token ids of the special tokens, a 256-entry byte -> id table, and how letters
    outside the vocabulary are treated (one of the `UNKNOWN_*` constants)."""

    cls_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    byte_to_id: np.ndarray  # (256,) int64
    unknown: UnknownLetters = UNKNOWN_RUN_AS_ONE_UNK
    vocabulary: bytes = b""  # the one-character tokens, for finding refused letters

    @classmethod
    def from_tokenizer(cls, tokenizer) -> EsmAlphabet:
        """Build from a Hugging Face ESM tokenizer and check it against that tokenizer.

        Raises `TokenizerMismatchError` when the tokenizer fails on, or disagrees with us
        about, anything it accepts; a tokenizer that refuses unknown letters is fine.
        """
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
            vocabulary=bytes(b for b in range(128) if table[b] != unk_id),
        )
        try:
            expected = _tokenizer_ids(tokenizer, _KNOWN_PROBE)
        except Exception as error:  # noqa: BLE001 - third-party code: any failure is a mismatch
            raise TokenizerMismatchError(
                f"the checkpoint's tokenizer fails on standard residues ({_KNOWN_PROBE!r}): "
                f"{type(error).__name__}: {error}"
            ) from error
        alphabet._check_same_ids(expected, _KNOWN_PROBE)
        try:
            expected = _tokenizer_ids(tokenizer, _UNKNOWN_PROBE)
        except Exception:  # noqa: BLE001 - a strict tokenizer signals refusal by raising
            return dataclasses.replace(alphabet, unknown=UNKNOWN_REFUSED)
        for unknown in (UNKNOWN_RUN_AS_ONE_UNK, UNKNOWN_LETTER_AS_UNK):
            candidate = dataclasses.replace(alphabet, unknown=unknown)
            if candidate._with_specials(_UNKNOWN_PROBE) == expected:
                return candidate
        return alphabet._check_same_ids(expected, _UNKNOWN_PROBE)

    def _with_specials(self, text: str) -> list[int]:
        return [self.cls_id, *self.encode([text.encode()])[0].tolist(), self.eos_id]

    def _check_same_ids(self, expected: list[int], text: str) -> EsmAlphabet:
        ours = self._with_specials(text)
        if ours != expected:
            raise TokenizerMismatchError(
                "the checkpoint's tokenizer is not a one-character-per-residue ESM tokenizer "
                f"(for {text!r} it gave {expected}, vectorized encoding gave {ours})"
            )
        return self

    def refused_letters(self, sequence: bytes) -> bytes:
        """The letters of `sequence` the tokenizer refuses (empty unless it is strict)."""
        if self.unknown != UNKNOWN_REFUSED:
            return b""
        return sequence.translate(None, self.vocabulary)

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
        if self.unknown == UNKNOWN_RUN_AS_ONE_UNK and repeat.any():
            keep = ~repeat
            ids = ids[keep]
            lengths = np.add.reduceat(keep.astype(np.int64), np.flatnonzero(starts))
        pieces = np.split(ids, np.cumsum(lengths)[:-1])
        if truncation_seq_length is not None:
            pieces = [piece[:truncation_seq_length] for piece in pieces]
        return pieces


def _tokenizer_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])
