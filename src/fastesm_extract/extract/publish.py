"""Publish one file: output + manifest written as one unit, failure-log lines, the result.

Every entry point (the many-files pipeline and the drop-in `extract_fast_esm`) writes
through here, so an output, its manifest and its failure-log lines always agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastesm_extract.disk.failures import (
    WHOLE_FILE,
    FailureKind,
    FailureLog,
    RecordFailure,
    is_input_failure,
)
from fastesm_extract.disk.fasta import FastaContents
from fastesm_extract.disk.invalid_inputs import (
    forget_failed_manifest_beside,
    remember_invalid_input,
)
from fastesm_extract.disk.layout import invalid_input_record, manifest_path
from fastesm_extract.disk.manifest import (
    FAILED_INPUT,
    Provenance,
    build_manifest,
    save_output_and_manifest,
)
from fastesm_extract.disk.manifest_schema import InputRead
from fastesm_extract.disk.verdict import CURRENT, INVALID, OutputVerdict
from fastesm_extract.extract.handoff import FileOutput
from fastesm_extract.extract.prepare import nucleotide_file_message
from fastesm_extract.results import FAILED, LOCKED, SKIPPED, WRITTEN, FileJob, FileResult, Status

log = logging.getLogger("fastesm_extract")


def publish(
    job: FileJob,
    output: FileOutput,
    provenance: Provenance,
    source: InputRead,
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
            provenance, source, n_read, len(proteins), failures, started, output.truncated
        )
        save_output_and_manifest(job.output, proteins, output.data, manifest)
    failure_log.record_many(job.fasta, failures)
    n_invalid = sum(is_input_failure(failure.kind) for failure in failures)
    if not proteins:
        message = f"none of its {n_read} records could be embedded: no output written"
        log.error("%s: %s (see %s)", job.fasta, message, failure_log.path)
        kinds = tuple(str(failure.kind) for failure in failures)
        return FileResult(
            job=job,
            status=FAILED,
            n_read=n_read,
            n_embedded=0,
            n_failed=n_read,
            message=message,
            n_invalid=n_invalid,
            failed_kinds=kinds,
        )
    if failures:
        log.warning(
            "%s: %d of %d records failed (see %s)",
            job.fasta,
            len(failures),
            n_read,
            failure_log.path,
        )
    return FileResult(
        job=job,
        status=WRITTEN,
        n_read=n_read,
        n_embedded=len(proteins),
        n_failed=len(failures),
        n_truncated=output.n_truncated,
        truncated=output.truncated,
        n_invalid=n_invalid,
        failed_kinds=tuple(str(failure.kind) for failure in failures),
    )


def file_failed(
    job: FileJob,
    kind: str,
    message: str,
    failure_log: FailureLog,
    n_read: int = 0,
    record_failures: list[RecordFailure] | None = None,
) -> FileResult:
    """A whole file failed: one failure-log line, one error, a FAILED result. Its records
    count as failed by their own kinds when known (`record_failures`), else by `kind`."""
    failure_log.record(job.fasta, RecordFailure(WHOLE_FILE, kind, message))
    log.error("%s: %s", job.fasta, message)
    kinds = tuple(str(f.kind) for f in record_failures) if record_failures else (kind,) * n_read
    n_invalid = sum(is_input_failure(k) for k in kinds) if record_failures else 0
    return FileResult(
        job=job,
        status=FAILED,
        n_read=n_read,
        n_failed=n_read,
        message=message,
        n_invalid=n_invalid,
        failed_kinds=kinds,
    )


def drop_output_of_earlier_input(job: FileJob) -> None:
    """Remove the output (and its manifest) of a job whose input has no valid record now:
    it was made from earlier content, and a rebuild gives no output, so it goes as a
    successful rebuild would have replaced it. Kept, its "complete" manifest would let
    `merge` and readers take it for this input's."""
    if job.output is None or not job.output.exists():
        return
    try:
        job.output.unlink()
        manifest_path(job.output).unlink(missing_ok=True)
    except OSError as error:
        log.error("%s: cannot remove the output of its earlier content: %s", job.output, error)
        return
    log.warning(
        "%s: removed %s, made from earlier content of the input: none of its records is valid now",
        job.fasta,
        job.output,
    )


def record_invalid_input(
    job: FileJob,
    contents: FastaContents,
    provenance: Provenance,
    started: str,
    failure_log: Path,
) -> None:
    """Remember, beside `failure_log`, that none of this input's records is valid (a
    "failed" manifest; no output, nothing beside the input), so that a rerun reports it
    again without logging every record again.

    Only where no output exists (`drop_output_of_earlier_input` removes an earlier one)."""
    if job.output is None or job.output.exists():
        return
    if not all(is_input_failure(f.kind) for f in contents.failures):
        return
    manifest = build_manifest(
        provenance,
        contents.source,
        contents.n_read,
        0,
        contents.failures,
        started,
        state=FAILED_INPUT,
    )
    try:
        forget_failed_manifest_beside(job.output)  # where earlier versions kept it
        remember_invalid_input(invalid_input_record(failure_log, job.output), manifest)
    except OSError as error:  # only a convenience: never fails the file
        log.warning("%s: cannot record that its input is invalid: %s", job.fasta, error)


def kept_result(job: FileJob, existing: OutputVerdict, failure_log: Path) -> FileResult:
    """The result for an output that is kept: finished (SKIPPED), STALE, or an input that is
    still all invalid (FAILED, reported without logging its records again)."""
    if existing.verdict == INVALID:
        message = (
            f"none of its {existing.n_read} records is valid input (unchanged since they were "
            f"logged in {failure_log}): no output"
        )
        kinds = existing.invalid_kinds
        if kinds and all(kind == FailureKind.NUCLEOTIDE_SEQUENCE for kind in kinds):
            message = (
                f"{nucleotide_file_message(job.fasta)}; unchanged since its {existing.n_read} "
                f"records were logged in {failure_log}: no output"
            )
        log.error("%s: %s", job.fasta, message)
        n = existing.n_invalid
        return FileResult(
            job=job,
            status=FAILED,
            n_read=existing.n_read,
            n_failed=n,
            n_invalid=n,
            message=message,
            failed_kinds=existing.invalid_kinds,
        )
    if existing.verdict != CURRENT:
        log.warning(
            "%s is %s: kept; --redo-stale rebuilds it, --accept-stale accepts it",
            job.output,
            existing.reason,
        )
        return FileResult(
            job=job, status=Status.STALE, message=existing.reason.removeprefix("stale: ")
        )
    if existing.n_invalid:
        log.warning(
            "%s: %d records failed for an input reason (listed in %s and its manifest)",
            job.fasta,
            existing.n_invalid,
            failure_log,
        )
    message = "valid output exists" + (f" ({existing.reason})" if existing.reason else "")
    n = existing.n_invalid
    return FileResult(
        job=job,
        status=SKIPPED,
        n_failed=n,
        n_invalid=n,
        message=message,
        failed_kinds=existing.invalid_kinds,
    )


def locked_result(job: FileJob, holder: str) -> FileResult:
    """Another live run is computing `job.output`: left to it."""
    return FileResult(job=job, status=LOCKED, message=f"being computed by {holder}")


def not_processed(job: FileJob, message: str) -> FileResult:
    """A file no worker began (its device failed, or no worker was left): redone by a rerun."""
    return FileResult(job=job, status=FAILED, message=message)


def written_before_death(job: FileJob) -> FileResult:
    """A file a worker finished (output and complete manifest) before dying unheard."""
    return FileResult(job=job, status=WRITTEN, message="written before its worker died")
