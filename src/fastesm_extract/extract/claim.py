"""Claim a job's output before building it: the one verdict (`disk.verdict.judge`) on what
the output must have been made from (`basis_for`, the run's), asked before and again under
the output's lock, the lock itself, and the cleanup of a killed run's leftovers.

    with claim_output(job, basis_for, locks, failure_log) as claimed:
        if isinstance(claimed, FileResult):
            return claimed  # kept (current or stale), invalid input, or another run's
        prepared = prepare_file(job, ..., claimed.contents)  # the lock is held
        prepared = replace(prepared, claim=claimed.hand_over())  # the writer releases it

Leaving the block without `hand_over()` (an error, a file that fails) releases the lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from fastesm_extract.disk.fasta import FastaContents, read_fasta
from fastesm_extract.disk.locks import OutputLocks
from fastesm_extract.disk.store import remove_leftover_temporaries
from fastesm_extract.disk.verdict import REBUILD, EsmBasis, judge, known_input_sha256
from fastesm_extract.extract.handoff import Claim
from fastesm_extract.extract.prepare import can_skip_reading
from fastesm_extract.extract.publish import kept_result, locked_result
from fastesm_extract.results import FileJob, FileResult

log = logging.getLogger("fastesm_extract")

# What a current output must have been made from, given the input's hash (and contents).
BasisFor = Callable[[FileJob, str, FastaContents | None], EsmBasis]


@contextlib.contextmanager
def claim_output(
    job: FileJob, basis_for: BasisFor, locks: OutputLocks, failure_log: Path
) -> Iterator[Claim | FileResult]:
    """A `Claim` on `job.output`, or the `FileResult` of an output this run leaves alone.

    A job without output (embedded in memory) has nothing to examine or lock: claimed."""
    if job.output is None:
        yield Claim(job, None, "")
        return
    # One read per input: hashed while parsed, unless only the hash may be needed.
    contents = None if can_skip_reading(job) else read_fasta(job.fasta)
    input_sha256 = contents.sha256 if contents else known_input_sha256(job)
    # Examined before locking: finished outputs are skipped without taking a lock.
    basis = basis_for(job, input_sha256, contents)
    if (existing := judge(job.output, basis)).verdict != REBUILD:
        yield kept_result(job, existing, failure_log)
        return
    if (holder := locks.try_acquire(job.output)) is not None:
        log.warning("%s is being computed by %s: skipped", job.output, holder)
        yield locked_result(job, holder)
        return
    claim = Claim(job, contents, "", locks)
    try:
        # Examined again under the lock: another run may have finished it meanwhile.
        if (existing := judge(job.output, basis)).verdict != REBUILD:
            yield kept_result(job, existing, failure_log)
            return
        if existing.reason:
            log.warning("existing output %s will be rebuilt: %s", job.output, existing.reason)
        remove_leftover_temporaries(job.output)  # ours to remove: this run holds the lock
        claim.reason = existing.reason
        yield claim
    finally:
        if not claim.handed_over:
            claim.release()
