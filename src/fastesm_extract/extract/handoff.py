"""The hand-offs of the one per-file path, in the order a file passes them:

    FileJob -> Claim -> PreparedFile -> ComputedFile -> FileOutput -> FileResult
    (source)   (claim)  (prepare)        (compute)       (publish)     (summary)

Each stage takes the one before and gives the next; `pipeline.Extractor` chains them for
every entry point. `FileJob` and `FileResult`, which every run reports, live in `results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from fastesm_extract.disk.failures import RecordFailure
from fastesm_extract.results import FileJob, TruncatedRecord

if TYPE_CHECKING:
    from fastesm_extract.disk.fasta import FastaContents
    from fastesm_extract.disk.locks import OutputLocks
    from fastesm_extract.extract.batching import BatchInputs


@dataclass
class Claim:
    """The right to build `job.output`, and the one owner of its lock from the claim to the
    write: the claim block hands it over (`hand_over`) with the prepared file, and the
    writer calls `release` once the file is written or abandoned. `release` is the one
    place an output's lock is let go (a second call does nothing)."""

    job: FileJob
    contents: FastaContents | None  # the input, when it was read to be examined
    reason: str  # why an existing output is replaced ("" for a new one)
    locks: OutputLocks | None = None  # the registry holding the lock (None: nothing locked)
    handed_over: bool = False
    released: bool = False

    def hand_over(self) -> Claim:
        """The lock now belongs to whoever writes the file; it must call `release`."""
        self.handed_over = True
        return self

    def release(self) -> None:
        if self.locks is not None and not self.released:
            self.released = True
            self.locks.release(self.job.output)


@dataclass(frozen=True)
class PreparedFile:
    """A file read, tokenized and batched, ready for the device."""

    job: FileJob
    contents: FastaContents
    tokens: list[np.ndarray]  # residue token ids per record, truncated
    batches: list[BatchInputs]
    truncated: tuple[TruncatedRecord, ...]  # records longer than the truncation length
    started: str = ""
    rebuild_reason: str = ""  # why an existing output is being replaced, if one is
    claim: Claim | None = None  # owns the output's lock until the file is written

    @property
    def n_truncated(self) -> int:
        return len(self.truncated)


@dataclass(frozen=True)
class ComputedFile:
    """Embeddings of a file on the CPU, one row per record in FASTA order."""

    prepared: PreparedFile
    block: torch.Tensor  # (n_records, hidden) float32
    embedded: torch.Tensor  # (n_records,) bool: rows holding a valid embedding
    failures: list[RecordFailure]  # compute-time failures, in addition to parse failures
    compiled: bool = False  # every batch ran through the compiled forward


@dataclass(frozen=True)
class FileOutput:
    """A file's checked embeddings in FASTA order, and every record that has none."""

    proteins: list[str]
    data: list[torch.Tensor]  # (hidden,) float32 each
    failures: list[RecordFailure]  # parse failures, then compute failures
    n_read: int
    truncated: tuple[TruncatedRecord, ...] = ()  # named in the manifest

    @property
    def n_truncated(self) -> int:
        return len(self.truncated)
