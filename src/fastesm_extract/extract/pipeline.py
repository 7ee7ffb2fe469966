"""Many FASTA files -> `_ESM.pt` outputs, pipelined: prepare ahead, compute, publish behind.

Per file: read -> tokenize -> batch (`prepare`, reader thread) -> embed -> pool -> validate
(`compute`, the caller's thread, the device) -> write (`publish`, writer thread).
Batches never mix files, so an output is the same bitwise however many files are processed
together or whether the run was resumed. Which outputs to (re)build is `resume`'s call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from fastesm_extract.disk.failures import FailureKind, FailureLog
from fastesm_extract.disk.fasta import FastaContents, read_fasta, record_ids
from fastesm_extract.disk.layout import invalid_input_record
from fastesm_extract.disk.locks import LockError, OutputLocks
from fastesm_extract.disk.manifest import (
    Provenance,
    utc_now,
)
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.disk.verdict import (
    CURRENT,
    EsmBasis,
    judge,
    known_input_sha256,
)
from fastesm_extract.errors import FastaError, OutputError
from fastesm_extract.extract.claim import claim_output
from fastesm_extract.extract.compute import assemble_output, compute_file
from fastesm_extract.extract.embed import DeviceFailedError, DeviceHealth
from fastesm_extract.extract.forward import forward_for
from fastesm_extract.extract.handoff import ComputedFile, FileOutput, PreparedFile
from fastesm_extract.extract.prefetch import prefetched
from fastesm_extract.extract.prepare import NoUsableRecordsError, prepare_file, warn_about_records
from fastesm_extract.extract.progress import ProgressSink, RunProgress
from fastesm_extract.extract.publish import (
    drop_output_of_earlier_input,
    file_failed,
    kept_result,
    publish,
    record_invalid_input,
)
from fastesm_extract.model.load import LoadedModel
from fastesm_extract.results import FAILED, LOCKED, FileJob, FileResult, RunSummary
from fastesm_extract.settings import ExtractionSettings

log = logging.getLogger("fastesm_extract")

SWITCH_INTERVAL_S = 0.0005


class Extractor:
    """Runs jobs through prepare -> compute -> write with the model loaded once."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ExtractionSettings,
        failure_log: FailureLog,
        show_progress: bool = True,
        raise_errors: bool = False,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        self.failure_log = failure_log
        self.show_progress = show_progress
        # The drop-in's contract: a file that fails is logged as in a run, then its error is
        # raised to the caller (a run records it and goes on).
        self.raise_errors = raise_errors
        self.provenance = Provenance.of(
            loaded, settings.truncation_seq_length, settings.toks_per_batch
        )
        self.forward = forward_for(loaded, settings)  # the model calls: eager or compiled

    def _basis(
        self, job: FileJob, input_sha256: str, contents: FastaContents | None = None
    ) -> EsmBasis:
        """What `job.output` must have been made from to be current for this run."""
        settings = self.settings
        return EsmBasis(
            job=job,
            identity=self.provenance.identity,
            input_sha256=input_sha256,
            input_ids=lambda: record_ids(contents or read_fasta(job.fasta)),
            overwrite=settings.overwrite,
            redo_stale=settings.redo_stale,
            invalid_record=invalid_input_record(self.failure_log.path, job.output),
        )

    def _prepare(self, job: FileJob) -> PreparedFile | FileResult:
        started = utc_now()
        try:
            with claim_output(job, self._basis, self._locks, self.failure_log.path) as claim:
                if isinstance(claim, FileResult):
                    return claim
                # The manifest vouches for the bytes parsed here, whatever was hashed first.
                prepared = prepare_file(job, self.loaded, self.settings, claim.contents)
                # The lock goes with the file: released once it is written or abandoned.
                prepared = dataclasses.replace(prepared, claim=claim.hand_over())
        except NoUsableRecordsError as error:
            self.failure_log.record_many(job.fasta, error.contents.failures)
            contents = error.contents
            drop_output_of_earlier_input(job)
            record_invalid_input(job, contents, self.provenance, started, self.failure_log.path)
            return self._give(
                file_failed(
                    job,
                    error.kind,
                    str(error),
                    self.failure_log,
                    contents.n_read,
                    contents.failures,
                )
            )
        except LockError as error:
            return self._give(self._file_failed(job, FailureKind.LOCK_ERROR, str(error)))
        except (FastaError, OSError) as error:
            if input_vanished(job):
                return self._give(
                    self._file_failed(job, FailureKind.INPUT_VANISHED, vanished_message(job))
                )
            message = (
                str(error) if isinstance(error, FastaError) else f"cannot read {job.fasta}: {error}"
            )
            return self._give(self._file_failed(job, FailureKind.UNREADABLE_FILE, message))
        except Exception as error:  # noqa: BLE001 - one bad file must not end the run
            message = f"{type(error).__name__}: {error}"
            return self._give(self._file_failed(job, FailureKind.FILE_ERROR, message))
        warn_about_records(prepared, self.settings)
        return dataclasses.replace(prepared, started=started, rebuild_reason=claim.reason)

    def _file_failed(self, job: FileJob, kind: str, message: str, n_read: int = 0) -> FileResult:
        return file_failed(job, kind, message, self.failure_log, n_read)

    def _give(self, result: FileResult) -> FileResult:
        """`result`, or (with `raise_errors`) the exception being handled, raised again once
        it is logged. Called from `except` blocks only."""
        if self.raise_errors:
            raise  # noqa: PLE0704 - re-raises the exception the caller is handling
        return result

    def _write(self, computed: ComputedFile) -> FileResult:
        return self._publish(computed)[0]

    def _publish(self, computed: ComputedFile) -> tuple[FileResult, FileOutput | None]:
        """Write the file (in memory only for a job without output) and release its lock."""
        try:
            return self._publish_locked(computed)
        finally:
            _release(computed.prepared)

    def _publish_locked(self, computed: ComputedFile) -> tuple[FileResult, FileOutput | None]:
        prepared = computed.prepared
        job = prepared.job
        try:
            output = assemble_output(computed, self.loaded.hidden_size)
            result = publish(
                job,
                output,
                dataclasses.replace(self.provenance, compiled=computed.compiled),
                prepared.contents.source,
                prepared.started,
                self.failure_log,
                write=job.output is not None,
            )
            return dataclasses.replace(result, rebuilt_because=prepared.rebuild_reason), output
        except (OutputError, OSError) as error:
            n_read = prepared.contents.n_read
            if input_vanished(job):
                message = vanished_message(job)
                return self._give(
                    self._file_failed(job, FailureKind.INPUT_VANISHED, message, n_read)
                ), None
            return self._give(
                self._file_failed(job, FailureKind.WRITE_ERROR, str(error), n_read)
            ), None
        except Exception as error:  # noqa: BLE001 - one file that cannot be written, not the run
            n_read = prepared.contents.n_read
            message = f"cannot write {job.output}: {type(error).__name__}: {error}"
            return self._give(
                self._file_failed(job, FailureKind.WRITE_ERROR, message, n_read)
            ), None

    def embed_one(self, job: FileJob) -> tuple[list[str], list[torch.Tensor]]:
        """One file through the very stages of a run (claim -> prepare -> compute -> publish),
        in this thread: the drop-in's path. A job without output is embedded in memory.

        Returns `(proteins, data)`: of the output it wrote, or of a current (or stale) output
        it kept. A file that fails is logged as in a run, then its error raised.
        """
        self._locks = OutputLocks()
        try:
            prepared = self._prepare(job)
            if isinstance(prepared, FileResult):  # an output this run leaves alone
                if prepared.status == LOCKED:
                    raise OutputError(f"{job.output} is {prepared.message}; call again later")
                if prepared.status == FAILED:  # every record invalid, as already logged
                    raise FastaError(f"{job.fasta}: {prepared.message}")
                return load_embeddings(job.output)
            computed = compute_file(prepared, self.loaded, forward=self.forward)
            result, output = self._publish(computed)
            return output.proteins, output.data
        finally:
            self._locks.close()

    def _device_failed(self, prepared: PreparedFile, error: DeviceFailedError) -> FileResult:
        """The file being computed when the device failed: not written, redone by a rerun."""
        _release(prepared)
        message = f"not finished: the device failed ({error}); rerun to redo this file"
        return self._file_failed(prepared.job, FailureKind.DEVICE_ERROR, message)

    def _recheck_locked(self, result: FileResult) -> FileResult:
        """A file another run was computing: finished by now (SKIPPED) or still LOCKED."""
        try:
            job = result.job
            existing = judge(job.output, self._basis(job, known_input_sha256(job)))
        except OSError:
            return result
        if existing.verdict != CURRENT:
            return result
        kept = kept_result(result.job, existing, self.failure_log.path)
        return dataclasses.replace(kept, message="finished by another run")

    def run(self, jobs: Iterable[FileJob], progress: ProgressSink | None = None) -> RunSummary:
        """Process every job; returns the summary (never raises for a bad file or record).

        `jobs` is consumed lazily by the reader thread, so it may be a queue-fed generator.
        """
        started = time.perf_counter()
        summary = RunSummary(
            failure_log=self.failure_log.path, accept_invalid=self.settings.accept_invalid
        )
        if progress is None:
            jobs = list(jobs)
            progress = RunProgress(len(jobs), enabled=self.show_progress)
        stop = threading.Event()
        pending: list[Future] = []
        self._locks = OutputLocks()
        health = DeviceHealth()

        def finished(result: FileResult) -> None:
            summary.results.append(result)
            progress.file_done(result)

        def counted(future: Future) -> None:
            # In the writer thread, as soon as the output is on disk: the count on the bar
            # must not wait for the next files' compute (it lagged two files behind).
            if not future.cancelled() and future.exception() is None:
                progress.file_done(future.result())

        def collect(future: Future) -> None:
            summary.results.append(future.result())

        # The device thread must get the GIL back quickly after each wait on the device; by
        # default a busy reader or writer thread keeps it for up to 5 ms.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_S))
        try:
            # On Ctrl-C or SIGTERM, leaving this block waits for the writes in progress: the
            # outputs already computed are kept, and no temporary file is left.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastesm-write") as writer:
                ahead = self.settings.prefetch_files
                for item in prefetched(self._prepare, jobs, ahead, stop, "fastesm-prepare"):
                    if isinstance(item, FileResult):
                        progress.file_started(0)
                        finished(item)
                        continue
                    progress.file_started(len(item.tokens))  # for the ETA, in records
                    try:
                        computed = compute_file(
                            item, self.loaded, progress.sequences, health, self.forward
                        )
                    except DeviceFailedError as error:
                        finished(self._device_failed(item, error))
                        summary.stopped = f"the device is unusable: {error}"
                        log.error("%s; stopping after the files already finished", summary.stopped)
                        break
                    pending.append(writer.submit(self._write, computed))
                    pending[-1].add_done_callback(counted)
                    # Bound memory: at most two finished files wait for the disk.
                    while len(pending) > 2:
                        collect(pending.pop(0))
                for future in pending:
                    collect(future)
        except KeyboardInterrupt as interrupt:
            # Ctrl-C or SIGTERM: the writes in progress have finished by now. What finished
            # rides on the exception, for "N of M files done" and the JSON summary.
            written = [f for f in pending if f.done() and not f.cancelled()]
            summary.results += [f.result() for f in written if f.exception() is None]
            interrupt.summary = summary
            raise
        finally:
            sys.setswitchinterval(switch_interval)
            stop.set()
            self._locks.close()  # locks of files prepared but never computed
            progress.close()
        summary.results = [
            self._recheck_locked(result) if result.status == LOCKED else result
            for result in summary.results
        ]
        summary.seconds = time.perf_counter() - started
        summary.failure_log_problem = self.failure_log.problem
        return summary


def input_vanished(job: FileJob) -> bool:
    """True when the job's input, there when the jobs were planned, is gone now."""
    return not os.path.lexists(job.fasta)


def vanished_message(job: FileJob) -> str:
    return f"the input vanished: {job.fasta} was deleted or moved during the run; no output"


def _release(prepared: PreparedFile) -> None:
    """The prepared file's output lock, let go by its owner (a job without output has none)."""
    if prepared.claim is not None:
        prepared.claim.release()
