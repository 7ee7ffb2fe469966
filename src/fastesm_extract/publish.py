"""Publish one file: output + manifest written as one unit, failure-log lines, the result.

Every entry point (the many-files pipeline and the drop-in `extract_fast_esm`) writes
through here, so an output, its manifest and its failure-log lines always agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .failures import WHOLE_FILE, FailureLog, RecordFailure, is_input_failure
from .jobs import FileJob
from .manifest import Provenance, build_manifest, save_output_and_manifest
from .summary import FAILED, WRITTEN, FileResult

log = logging.getLogger("fastesm_extract")


@dataclass(frozen=True)
class FileOutput:
    """A file's checked embeddings in FASTA order, and every record that has none."""

    proteins: list[str]
    data: list[torch.Tensor]  # (hidden,) float32 each
    failures: list[RecordFailure]  # parse failures, then compute failures
    n_read: int
    n_truncated: int = 0


def publish(
    job: FileJob,
    output: FileOutput,
    provenance: Provenance,
    input_sha256: str,
    started: str,
    failure_log: FailureLog,
    write: bool = True,
) -> FileResult:
    """Write `job.output` and its manifest (unless `write` is False or no record was
    embedded), then log the failed records. Raises `OSError` when the output cannot be
    written: nothing is logged then, the caller decides (see `file_failed`)."""
    proteins, failures, n_read = output.proteins, output.failures, output.n_read
    if write and proteins:  # a file with no embedding writes no output
        manifest = build_manifest(
            provenance, job.fasta, input_sha256, n_read, len(proteins), failures, started
        )
        save_output_and_manifest(job.output, proteins, output.data, manifest)
    failure_log.record_many(job.fasta, failures)
    n_invalid = sum(is_input_failure(failure.kind) for failure in failures)
    if not proteins:
        message = f"none of its {n_read} records could be embedded: no output written"
        log.error("%s: %s (see %s)", job.fasta, message, failure_log.path)
        return FileResult(job, FAILED, n_read, 0, n_read, message=message, n_invalid=n_invalid)
    if failures:
        log.warning(
            "%s: %d of %d records failed (see %s)",
            job.fasta,
            len(failures),
            n_read,
            failure_log.path,
        )
    return FileResult(
        job,
        WRITTEN,
        n_read,
        len(proteins),
        len(failures),
        output.n_truncated,
        n_invalid=n_invalid,
    )


def file_failed(
    job: FileJob, kind: str, message: str, failure_log: FailureLog, n_read: int = 0
) -> FileResult:
    """A whole file failed: one failure-log line, one error, a FAILED result."""
    failure_log.record(job.fasta, RecordFailure(WHOLE_FILE, kind, message))
    log.error("%s: %s", job.fasta, message)
    return FileResult(job, FAILED, n_read=n_read, n_failed=n_read, message=message)
