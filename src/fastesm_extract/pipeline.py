"""Many FASTA files -> `_ESM.pt` outputs, pipelined: prepare ahead, compute, write behind.

Per file: read -> tokenize -> batch (reader thread) -> embed -> pool (caller's thread, the
device) -> validate -> write (writer thread). Batches never mix files, so an output is the
same bitwise however many files are processed together or whether the run was resumed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .batching import SPECIAL_TOKENS_PER_SEQUENCE, BatchInputs, collate, make_batches
from .embed import DeviceFailedError, DeviceHealth, embed_batch, embed_with_oom_split
from .failures import WHOLE_FILE, FailureLog, RecordFailure, is_input_failure
from .fasta import FastaContents, FastaError, ProteinRecord, read_fasta
from .jobs import FileJob
from .locks import OutputLocks
from .manifest import (
    Provenance,
    build_manifest,
    save_output_and_manifest,
    sha256_of,
    utc_now,
)
from .model import LoadedModel
from .progress import ProgressSink, RunProgress
from .resume import BUILD, FINISHED, ExistingOutput, examine_output
from .store import (
    OutputError,
    embeddings_from_block,
    finite_rows,
    remove_leftover_temporaries,
    validate_block,
)
from .summary import FAILED, LOCKED, SKIPPED, STALE, WRITTEN, FileResult, RunSummary
from .tokens import UNKNOWN_REFUSED, EsmAlphabet

log = logging.getLogger("fastesm_extract")

SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class ExtractionSettings:
    """How sequences are cut and grouped; the defaults are the original ESM2 settings."""

    toks_per_batch: int = 2048
    truncation_seq_length: int = 1024
    overwrite: bool = False
    redo_stale: bool = False  # rebuild outputs whose manifest shows other inputs or settings
    accept_invalid: bool = False  # records failed for an input reason do not fail the run
    prefetch_files: int = 2  # files read and tokenized ahead of the device

    def __post_init__(self) -> None:
        if self.toks_per_batch < 1 or self.truncation_seq_length < 1:
            raise ValueError("toks_per_batch and truncation_seq_length must be positive")


@dataclass(frozen=True)
class PreparedFile:
    """A file read, tokenized and batched, ready for the device."""

    job: FileJob
    contents: FastaContents
    tokens: list[np.ndarray]  # residue token ids per record, truncated
    batches: list[BatchInputs]
    n_truncated: int
    input_sha256: str = ""
    started: str = ""


@dataclass(frozen=True)
class ComputedFile:
    """Embeddings of a file on the CPU, one row per record in FASTA order."""

    prepared: PreparedFile
    block: torch.Tensor  # (n_records, hidden) float32
    embedded: torch.Tensor  # (n_records,) bool: rows holding a valid embedding
    failures: list[RecordFailure]  # compute-time failures, in addition to parse failures


def refuse_unknown_letters(contents: FastaContents, alphabet: EsmAlphabet) -> FastaContents:
    """With a strict tokenizer, each record holding a letter it refuses fails alone (SPEC 6)."""
    if alphabet.unknown != UNKNOWN_REFUSED:
        return contents
    kept: list[ProteinRecord] = []
    failures = list(contents.failures)
    for record in contents.records:
        refused = alphabet.refused_letters(record.sequence)
        if not refused:
            kept.append(record)
            continue
        shown = ", ".join(repr(chr(letter)) for letter in sorted(set(refused))[:5])
        message = f"sequence contains {shown}, which the model's tokenizer refuses (strict)"
        failures.append(RecordFailure(record.id, "invalid_character", message))
    return dataclasses.replace(contents, records=kept, failures=failures)


class NoUsableRecordsError(FastaError):
    """Every record of the file failed; `contents` holds their failures."""

    def __init__(self, contents: FastaContents) -> None:
        super().__init__(f"{contents.path} has no usable records ({len(contents.failures)} failed)")
        self.contents = contents


def prepare_file(
    job: FileJob,
    loaded: LoadedModel,
    settings: ExtractionSettings,
    contents: FastaContents | None = None,
) -> PreparedFile:
    """Read (unless `contents` is given), tokenize and batch one FASTA file.

    Raises `FastaError` for an unusable file (`NoUsableRecordsError` when every record failed).
    """
    if contents is None:
        contents = read_fasta(job.fasta)
    contents = refuse_unknown_letters(contents, loaded.alphabet)
    if not contents.records:
        raise NoUsableRecordsError(contents)
    full = loaded.alphabet.encode([record.sequence for record in contents.records])
    limit = settings.truncation_seq_length
    n_truncated = sum(len(tokens) > limit for tokens in full)
    tokens = [ids[:limit] for ids in full]
    groups = make_batches(
        [len(ids) + SPECIAL_TOKENS_PER_SEQUENCE for ids in tokens], settings.toks_per_batch
    )
    batches = [collate(loaded.alphabet, tokens, rows) for rows in groups]
    if loaded.device.type == "cuda":
        batches = [batch.pin_memory() for batch in batches]
    return PreparedFile(job, contents, tokens, batches, n_truncated, contents.sha256)


def compute_file(
    prepared: PreparedFile,
    loaded: LoadedModel,
    on_batch: Callable[[int], None] = lambda count: None,
    health: DeviceHealth | None = None,
) -> ComputedFile:
    """Embed every batch of a prepared file; a failing batch fails its records, not the run.

    Raises `DeviceFailedError` when `health` judges the device unusable: the file is then
    not finished and must not be written.
    """
    health = health or DeviceHealth()
    n_records = len(prepared.tokens)
    # Rows left unwritten (failed records) are never read: `embedded` masks them.
    block = torch.empty(n_records, loaded.hidden_size, dtype=torch.float32, device=loaded.device)
    done: list[int] = []  # rows holding an embedding
    failures: list[RecordFailure] = []
    records = prepared.contents.records

    def embed(batch: BatchInputs) -> torch.Tensor:
        return embed_batch(loaded, batch)

    def collate_rows(rows: list[int]) -> BatchInputs:
        return collate(loaded.alphabet, prepared.tokens, rows)

    for batch in prepared.batches:
        settled: set[int] = set()  # rows of this batch already embedded or failed
        try:
            for outcome in embed_with_oom_split(embed, batch, collate_rows):
                if outcome.embeddings is None:
                    failures += [
                        RecordFailure(records[r].id, "out_of_memory", outcome.error or "")
                        for r in outcome.rows
                    ]
                else:
                    if outcome.rows == batch.rows:  # the usual case: index prebuilt and pinned
                        index = batch.row_index.to(loaded.device, non_blocking=True)
                    else:  # a piece of a batch split after running out of memory
                        index = torch.tensor(outcome.rows, device=loaded.device)
                    block.index_copy_(0, index, outcome.embeddings)
                    done.extend(outcome.rows)
                settled.update(outcome.rows)
        except Exception as error:  # noqa: BLE001 - a bad batch is logged, the run goes on
            health.batch_failed(error)  # unless the device itself failed
            message = f"{type(error).__name__}: {error}"
            failures += [
                RecordFailure(records[r].id, "batch_error", message)
                for r in batch.rows
                if r not in settled
            ]
        else:
            health.batch_succeeded()
        on_batch(len(batch.rows))
    embedded = torch.zeros(n_records, dtype=torch.bool)
    embedded[torch.tensor(done, dtype=torch.long)] = True
    block = block.cpu()  # one device-to-host transfer per file
    finite = finite_rows(block)
    for row in torch.nonzero(embedded & ~finite).flatten().tolist():
        failures.append(
            RecordFailure(
                records[row].id, "non_finite_embedding", "embedding has NaN or infinite values"
            )
        )
    return ComputedFile(prepared, block, embedded & finite, failures)


def assemble_output(
    computed: ComputedFile, hidden_size: int
) -> tuple[list[str], list[torch.Tensor], list[RecordFailure]]:
    """FASTA-ordered IDs and embeddings, checked: raises `OutputError` if they do not add up."""
    records = computed.prepared.contents.records
    keep = computed.embedded
    proteins = [record.id for record, ok in zip(records, keep.tolist()) if ok]
    block = computed.block if bool(keep.all()) else computed.block[keep]
    failures = computed.prepared.contents.failures + computed.failures
    problems = validate_block(proteins, block, hidden_size)
    n_read = computed.prepared.contents.n_read
    if len(proteins) + len(failures) != n_read:
        problems.append(f"{len(proteins)} embedded + {len(failures)} failed != {n_read} read")
    if problems:
        raise OutputError(f"{computed.prepared.job.fasta}: " + "; ".join(problems))
    return proteins, embeddings_from_block(block), failures


def can_skip_reading(job: FileJob) -> bool:
    """True when the input may be hashed alone first: an output exists that may be
    finished, and the input is a regular file that can be read twice (not a pipe)."""
    try:
        return job.output.exists() and stat.S_ISREG(os.stat(job.fasta).st_mode)
    except OSError:
        return False


def warn_about_records(prepared: PreparedFile, settings: ExtractionSettings) -> None:
    contents = prepared.contents
    if contents.duplicate_ids:
        shown = ", ".join(contents.duplicate_ids[:5])
        log.warning(
            "%s: %d duplicate IDs kept in order (merge_data() keeps the last): %s",
            contents.path,
            len(contents.duplicate_ids),
            shown,
        )
    if prepared.n_truncated:
        log.warning(
            "%s: %d sequences longer than %d residues were truncated",
            contents.path,
            prepared.n_truncated,
            settings.truncation_seq_length,
        )


class Extractor:
    """Runs jobs through prepare -> compute -> write with the model loaded once."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ExtractionSettings,
        failure_log: FailureLog,
        show_progress: bool = True,
    ) -> None:
        self.loaded = loaded
        self.settings = settings
        self.failure_log = failure_log
        self.show_progress = show_progress
        self.provenance = Provenance.of(
            loaded, settings.truncation_seq_length, settings.toks_per_batch
        )

    def _examine(self, job: FileJob, input_sha256: str) -> ExistingOutput:
        settings = self.settings
        return examine_output(
            job,
            self.provenance,
            input_sha256,
            overwrite=settings.overwrite,
            redo_stale=settings.redo_stale,
        )

    def _kept(self, job: FileJob, existing: ExistingOutput) -> FileResult:
        """The result for an output that is kept: finished (SKIPPED) or STALE."""
        if existing.verdict != FINISHED:
            log.warning("%s is %s: kept; --redo-stale rebuilds it", job.output, existing.reason)
            return FileResult(job, STALE, message=existing.reason.removeprefix("stale: "))
        if existing.n_invalid:
            log.warning(
                "%s: %d records failed for an input reason (listed in %s and its manifest)",
                job.fasta,
                existing.n_invalid,
                self.failure_log.path,
            )
        message = "valid output exists" + (f" ({existing.reason})" if existing.reason else "")
        n = existing.n_invalid
        return FileResult(job, SKIPPED, n_failed=n, n_invalid=n, message=message)

    def _prepare(self, job: FileJob) -> PreparedFile | FileResult:
        started = utc_now()
        locked = False
        try:
            # One read per input: hashed while parsed, unless only the hash may be needed.
            contents = None if can_skip_reading(job) else read_fasta(job.fasta)
            input_sha256 = contents.sha256 if contents else sha256_of(job.fasta)
            # Outputs are examined before locking: finished ones are skipped without a lock.
            if (existing := self._examine(job, input_sha256)).verdict != BUILD:
                return self._kept(job, existing)
            if (holder := self._locks.try_acquire(job.output)) is not None:
                log.warning("%s is being computed by %s: skipped", job.output, holder)
                return FileResult(job, LOCKED, message=f"being computed by {holder}")
            locked = True
            # Examined again under the lock: another run may have finished it meanwhile.
            if (existing := self._examine(job, input_sha256)).verdict != BUILD:
                return self._kept(job, existing)
            if existing.reason:
                log.warning("existing output %s will be rebuilt: %s", job.output, existing.reason)
            remove_leftover_temporaries(job.output)  # ours to remove: this run holds the lock
            prepared = prepare_file(job, self.loaded, self.settings, contents)
            locked = False  # from here on, released once the file is written or abandoned
        except NoUsableRecordsError as error:
            self.failure_log.record_many(job.fasta, error.contents.failures)
            return self._file_failed(job, "unreadable_file", str(error), error.contents.n_read)
        except FastaError as error:
            return self._file_failed(job, "unreadable_file", str(error))
        except OSError as error:
            return self._file_failed(job, "unreadable_file", f"cannot read {job.fasta}: {error}")
        except Exception as error:  # noqa: BLE001 - one bad file must not end the run
            return self._file_failed(job, "file_error", f"{type(error).__name__}: {error}")
        finally:
            if locked:
                self._locks.release(job.output)
        warn_about_records(prepared, self.settings)
        return dataclasses.replace(prepared, input_sha256=input_sha256, started=started)

    def _file_failed(self, job: FileJob, kind: str, message: str, n_read: int = 0) -> FileResult:
        self.failure_log.record(job.fasta, RecordFailure(WHOLE_FILE, kind, message))
        log.error("%s: %s", job.fasta, message)
        return FileResult(job, FAILED, n_read=n_read, n_failed=n_read, message=message)

    def _write(self, computed: ComputedFile) -> FileResult:
        try:
            return self._write_locked(computed)
        finally:
            self._locks.release(computed.prepared.job.output)

    def _write_locked(self, computed: ComputedFile) -> FileResult:
        prepared = computed.prepared
        job = prepared.job
        n_read = prepared.contents.n_read
        try:
            proteins, data, failures = assemble_output(computed, self.loaded.hidden_size)
            if proteins:  # a file with no embedding writes no output
                manifest = build_manifest(
                    self.provenance,
                    job.fasta,
                    prepared.input_sha256,
                    n_read,
                    len(proteins),
                    failures,
                    prepared.started,
                )
                save_output_and_manifest(job.output, proteins, data, manifest)
        except (OutputError, OSError) as error:
            return self._file_failed(job, "write_error", str(error), n_read)
        self.failure_log.record_many(job.fasta, failures)
        n_invalid = sum(is_input_failure(failure.kind) for failure in failures)
        if not proteins:
            message = f"none of its {n_read} records could be embedded: no output written"
            log.error("%s: %s (see %s)", job.fasta, message, self.failure_log.path)
            return FileResult(job, FAILED, n_read, 0, n_read, message=message, n_invalid=n_invalid)
        if failures:
            log.warning(
                "%s: %d of %d records failed (see %s)",
                job.fasta,
                len(failures),
                n_read,
                self.failure_log.path,
            )
        return FileResult(
            job,
            WRITTEN,
            n_read,
            len(proteins),
            len(failures),
            prepared.n_truncated,
            n_invalid=n_invalid,
        )

    def _device_failed(self, prepared: PreparedFile, error: DeviceFailedError) -> FileResult:
        """The file being computed when the device failed: not written, redone by a rerun."""
        self._locks.release(prepared.job.output)
        message = f"not finished: the device failed ({error}); rerun to redo this file"
        return self._file_failed(prepared.job, "device_error", message)

    def _recheck_locked(self, result: FileResult) -> FileResult:
        """A file another run was computing: finished by now (SKIPPED) or still LOCKED."""
        try:
            existing = self._examine(result.job, sha256_of(result.job.fasta))
        except OSError:
            return result
        if existing.verdict != FINISHED:
            return result
        return dataclasses.replace(
            self._kept(result.job, existing), message="finished by another run"
        )

    def _prepared_in_background(
        self, jobs: Iterable[FileJob], stop: threading.Event
    ) -> Iterator[PreparedFile | FileResult]:
        """Yield `_prepare(job)` for each job, computed up to `prefetch_files` ahead.

        An unexpected error in the reader thread is raised here, in the caller's thread,
        instead of leaving it waiting forever.
        """
        ready: queue.Queue = queue.Queue(maxsize=max(1, self.settings.prefetch_files))
        done = object()

        def hand_over(item: object) -> None:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            try:
                for job in jobs:
                    hand_over(self._prepare(job))
                    if stop.is_set():
                        return
                hand_over(done)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                hand_over(error)

        threading.Thread(target=produce, name="fastesm-prepare", daemon=True).start()
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item

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

        def collect(future: Future) -> None:
            finished(future.result())

        # The device thread must get the GIL back quickly after each wait on the device; by
        # default a busy reader or writer thread keeps it for up to 5 ms.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_S))
        try:
            # On Ctrl-C or SIGTERM, leaving this block waits for the writes in progress: the
            # outputs already computed are kept, and no temporary file is left.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastesm-write") as writer:
                for item in self._prepared_in_background(jobs, stop):
                    if isinstance(item, FileResult):
                        finished(item)
                        continue
                    try:
                        computed = compute_file(item, self.loaded, progress.sequences, health)
                    except DeviceFailedError as error:
                        finished(self._device_failed(item, error))
                        summary.stopped = f"the device is unusable: {error}"
                        log.error("%s; stopping after the files already finished", summary.stopped)
                        break
                    pending.append(writer.submit(self._write, computed))
                    # Bound memory: at most two finished files wait for the disk.
                    while len(pending) > 2:
                        collect(pending.pop(0))
                for future in pending:
                    collect(future)
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
