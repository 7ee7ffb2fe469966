"""Resume: is an existing output current, stale, or to be (re)built? (see `currency`)

Decided from the output itself and its manifest, never by recomputing:
- no output, `--overwrite`, an output that does not load, or a damaged manifest -> build;
- a pending manifest (a run died between output and manifest) -> build;
- an output that is not the one its manifest describes (copied or moved over it) -> build;
- the input content changed since the output was made -> build;
- an output with 0 records, or one whose manifest lists records that failed for a passing
  reason (out of memory, batch error, ...) -> build, so those records are retried;
- another model or truncation -> stale: kept and reported (built with `--redo-stale`);
- an output without manifest (the original pipeline's) -> finished when its IDs are its
  input's, built when they are not;
- otherwise finished: skipped, and records that failed for an input reason are reported again.
A file none of whose records is valid input has no output, only a "failed" manifest: while
its input and model are unchanged it is reported again (`INVALID`) without being re-read
into the failure log.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from fastesm_extract.disk.currency import (
    ModelIdentity,
    input_changed,
    model_differences,
    other_output,
)
from fastesm_extract.disk.failures import FailureKind, is_input_failure
from fastesm_extract.disk.manifest import (
    FAILED_INPUT,
    ManifestError,
    is_complete,
    load_manifest,
    sha256_of,
)
from fastesm_extract.disk.manifest_schema import Manifest
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.errors import OutputError
from fastesm_extract.results import FileJob, Status

log = logging.getLogger("fastesm_extract")


class Verdict(str, Enum):
    """What to do with an existing output."""

    BUILD = "build"  # (re)compute it
    FINISHED = "finished"  # keep it: SKIPPED
    STALE = Status.STALE.value  # keep it and report it: STALE (rebuilt with --redo-stale)
    INVALID = "invalid"  # no output: every record is invalid input, unchanged since reported

    def __str__(self) -> str:
        return self.value


BUILD, FINISHED, STALE, INVALID = Verdict


@dataclass(frozen=True)
class ExistingOutput:
    """The verdict on the output of a job, and why (for the log; empty when nothing to say)."""

    verdict: Verdict
    reason: str = ""
    n_invalid: int = 0  # records the manifest lists as failed for an input reason
    n_read: int = 0  # INVALID: the records of the input
    invalid_kinds: tuple[str, ...] = ()  # the failure kind of each of those records


def _invalid_input_verdict(job: FileJob, identity: ModelIdentity, input_sha256: str):
    """INVALID for an input whose "failed" manifest still describes it; else BUILD."""
    try:
        manifest = load_manifest(job.output)
    except ManifestError:
        return ExistingOutput(BUILD)
    if manifest is None or manifest.state != FAILED_INPUT:
        return ExistingOutput(BUILD)
    if input_changed(manifest, input_sha256) or model_differences(manifest, identity):
        return ExistingOutput(BUILD)
    kinds = manifest.records.failed_kinds
    n = len(kinds)
    n_read = manifest.records.read if manifest.records.read is not None else n
    return ExistingOutput(INVALID, "none of its records is valid input", n, n_read, kinds)


def examine_output(
    job: FileJob,
    identity: ModelIdentity,
    input_sha256: str,
    *,
    input_ids: Callable[[], list[str]] | None = None,
    overwrite: bool = False,
    redo_stale: bool = False,
) -> ExistingOutput:
    """What to do with `job.output` for a run of `identity` over an input of this hash.

    `input_ids` gives the input's record IDs, read only for an output without manifest.
    """
    if overwrite:
        return ExistingOutput(BUILD)
    if not job.output.exists():
        return _invalid_input_verdict(job, identity, input_sha256)
    try:
        proteins, data = load_embeddings(job.output)  # any dimension: another model's is stale
    except OutputError as error:
        return ExistingOutput(BUILD, f"existing output is unusable: {error}")
    try:
        manifest = load_manifest(job.output)
    except ManifestError as error:  # ours, and no longer telling what the output is
        return ExistingOutput(BUILD, str(error))
    if manifest is not None and not is_complete(manifest):
        return ExistingOutput(BUILD, "it was never completed (its run was interrupted)")
    if not proteins:
        return ExistingOutput(BUILD, "it holds no embeddings")
    if manifest is None:
        return _without_manifest(proteins, int(data[0].shape[0]), identity, input_ids, redo_stale)
    if swapped := _other_output(job.output, manifest, len(proteins)):
        return ExistingOutput(BUILD, swapped)
    if input_changed(manifest, input_sha256):
        return ExistingOutput(BUILD, "the input changed since it was made")
    reasons = model_differences(manifest, identity)
    dimension = int(data[0].shape[0])
    if not reasons and dimension != identity.hidden_size:
        reasons = [f"{dimension} dimensions, this model gives {identity.hidden_size}"]
    if reasons:
        return ExistingOutput(BUILD if redo_stale else STALE, "stale: " + "; ".join(reasons))
    failed_ids = manifest.records.failed_ids
    kinds = list(manifest.records.failed_kinds)
    if len(kinds) != len(failed_ids):  # an older manifest: why they failed is unknown
        kinds = [FailureKind.UNKNOWN] * len(failed_ids)
    passing = [kind for kind in kinds if not is_input_failure(kind)]
    if passing:
        shown = ", ".join(sorted(set(passing)))
        return ExistingOutput(BUILD, f"retrying {len(passing)} records that failed ({shown})")
    return ExistingOutput(FINISHED, n_invalid=len(kinds), invalid_kinds=tuple(kinds))


def _other_output(output: Path, manifest: Manifest, n_records: int) -> str:
    recorded = manifest.output
    size = os.stat(output).st_size
    if recorded is not None and recorded.size != size:
        return other_output(manifest, size, "", n_records)  # no need to hash it
    digest = sha256_of(output) if recorded is not None else ""
    return other_output(manifest, size, digest, n_records)


def _without_manifest(
    proteins: list[str],
    dimension: int,
    identity: ModelIdentity,
    input_ids: Callable[[], list[str]] | None,
    redo_stale: bool,
) -> ExistingOutput:
    """An output of the original pipeline (or of a tool that writes no manifest)."""
    if dimension != identity.hidden_size:
        reason = f"stale: {dimension} dimensions, this model gives {identity.hidden_size}"
        return ExistingOutput(BUILD if redo_stale else STALE, reason)
    if input_ids is not None:
        expected, found = Counter(input_ids()), Counter(proteins)
        if found != expected:
            differing = sum(((found - expected) + (expected - found)).values())
            return ExistingOutput(
                BUILD, f"it has no manifest and its IDs are not its input's ({differing} differ)"
            )
    return ExistingOutput(FINISHED, "no manifest")


def finished_before_death(job: FileJob) -> bool:
    """True when a worker that died had completed `job` (output and its complete manifest
    for this very input) but could not say so."""
    try:
        manifest = load_manifest(job.output)
    except ManifestError:
        return False
    if manifest is None or not is_complete(manifest) or not job.output.exists():
        return False
    try:
        proteins, _ = load_embeddings(job.output)
        if _other_output(job.output, manifest, len(proteins)):
            return False
        return not input_changed(manifest, sha256_of(job.fasta))
    except (OutputError, OSError):
        return False
