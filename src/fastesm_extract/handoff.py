"""The hand-offs of the one per-file path, in the order a file passes them:

    FileJob -> Claim -> PreparedFile -> ComputedFile -> FileOutput -> FileResult
    (source)   (claim)  (prepare)        (compute)       (publish)     (summary)

and `Status`, the outcome of a file. Each stage takes the one before and gives the next;
`pipeline.Extractor` chains them for every entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .failures import RecordFailure

if TYPE_CHECKING:
    from .batching import BatchInputs
    from .fasta import FastaContents


class Status(str, Enum):
    """The outcome of one file (or one merged pair); equal to its text: `"written"`, ..."""

    WRITTEN = "written"
    SKIPPED = "skipped"  # a finished output was kept
    STALE = "stale"  # an output of another input, model or setting was kept and reported
    LOCKED = "locked"  # being computed by another run: skipped by this one
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


WRITTEN, SKIPPED, STALE, LOCKED, FAILED = Status  # the short names the modules use


@dataclass(frozen=True)
class FileJob:
    """One FASTA file and the `_ESM.pt` it becomes (None: embedded in memory only)."""

    fasta: Path
    output: Path | None


@dataclass
class Claim:
    """The right to build `job.output`: this run holds its lock."""

    job: FileJob
    contents: FastaContents | None  # the input, when it was read to be examined
    reason: str  # why an existing output is replaced ("" for a new one)
    handed_over: bool = False

    def hand_over(self) -> None:
        """The lock now belongs to whoever writes the file (released after publishing)."""
        self.handed_over = True


@dataclass(frozen=True)
class PreparedFile:
    """A file read, tokenized and batched, ready for the device."""

    job: FileJob
    contents: FastaContents
    tokens: list[np.ndarray]  # residue token ids per record, truncated
    batches: list[BatchInputs]
    n_truncated: int
    started: str = ""
    rebuild_reason: str = ""  # why an existing output is being replaced, if one is


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
    n_truncated: int = 0


@dataclass(frozen=True, kw_only=True)
class FileResult:
    """What happened to one input file."""

    job: FileJob
    status: Status
    n_read: int = 0
    n_embedded: int = 0
    n_failed: int = 0  # records without an embedding in the output on disk
    n_truncated: int = 0
    message: str = ""
    n_invalid: int = 0  # of n_failed: failed for an input reason (reported on every rerun)
    rebuilt_because: str = ""  # WRITTEN over an existing output: why it was replaced
    failed_kinds: tuple[str, ...] = ()  # the failure kind of each of the n_failed records
