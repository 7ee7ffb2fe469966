"""Resume: is an existing output finished, stale, or to be (re)built? (SPEC sections 4 and 8)

Decided from the output itself and its manifest, never by recomputing:
- no output, `--overwrite`, an output that does not load, or a damaged manifest -> build;
- a pending manifest (a run died between output and manifest) -> build;
- an output with 0 records, or one whose manifest lists records that failed for a passing
  reason (out of memory, batch error, ...) -> build, so those records are retried;
- another input, model, hidden size or setting -> stale: kept and reported (build only with
  `--redo-stale`);
- otherwise finished: skipped, and records that failed for an input reason are reported again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .failures import is_input_failure
from .jobs import FileJob
from .manifest import (
    ManifestError,
    Provenance,
    is_complete,
    read_manifest,
    sha256_of,
    stale_reasons,
)
from .store import OutputError, load_embeddings
from .summary import SKIPPED, FileResult, Status

log = logging.getLogger("fastesm_extract")


class Verdict(str, Enum):
    """What to do with an existing output."""

    BUILD = "build"  # (re)compute it
    FINISHED = "finished"  # keep it: SKIPPED
    STALE = Status.STALE.value  # keep it and report it: STALE (rebuilt with --redo-stale)

    def __str__(self) -> str:
        return self.value


BUILD, FINISHED, STALE = Verdict


@dataclass(frozen=True)
class ExistingOutput:
    """The verdict on the output of a job, and why (for the log; empty when nothing to say)."""

    verdict: Verdict
    reason: str = ""
    n_invalid: int = 0  # records the manifest lists as failed for an input reason


def examine_output(
    job: FileJob,
    provenance: Provenance,
    input_sha256: str,
    *,
    overwrite: bool = False,
    redo_stale: bool = False,
) -> ExistingOutput:
    """What to do with `job.output` for a run with `provenance` over an input of this hash."""
    if overwrite or not job.output.exists():
        return ExistingOutput(BUILD)
    try:
        proteins, data = load_embeddings(job.output)  # any dimension: another model's is stale
    except OutputError as error:
        return ExistingOutput(BUILD, f"existing output is unusable: {error}")
    try:
        manifest = read_manifest(job.output)
    except ManifestError as error:  # ours, and no longer telling what the output is
        return ExistingOutput(BUILD, str(error))
    if manifest is not None and not is_complete(manifest):
        return ExistingOutput(BUILD, "it was never completed (its run was interrupted)")
    if not proteins:
        return ExistingOutput(BUILD, "it holds no embeddings")
    dimension = int(data[0].shape[0])
    reasons = (
        []
        if dimension == provenance.hidden_size
        else [f"{dimension} dimensions, this model gives {provenance.hidden_size}"]
    )
    if manifest is not None:
        reasons = stale_reasons(manifest, provenance, input_sha256) or reasons
    if reasons:
        return ExistingOutput(BUILD if redo_stale else STALE, "stale: " + "; ".join(reasons))
    if manifest is None:  # e.g. the original pipeline's outputs: validated, kept
        return ExistingOutput(FINISHED, "no manifest")
    records = manifest.get("records", {})
    failed_ids = records.get("failed_ids") or []
    kinds = records.get("failed_kinds") or []
    if len(kinds) != len(failed_ids):  # an older manifest: why they failed is unknown
        kinds = ["unknown"] * len(failed_ids)
    passing = [kind for kind in kinds if not is_input_failure(kind)]
    if passing:
        shown = ", ".join(sorted(set(passing)))
        return ExistingOutput(BUILD, f"retrying {len(passing)} records that failed ({shown})")
    return ExistingOutput(FINISHED, n_invalid=len(kinds))


def kept_result(job: FileJob, existing: ExistingOutput, failure_log: Path) -> FileResult:
    """The result for an output that is kept: finished (SKIPPED) or STALE, reported."""
    if existing.verdict != FINISHED:
        log.warning("%s is %s: kept; --redo-stale rebuilds it", job.output, existing.reason)
        return FileResult(job, Status.STALE, message=existing.reason.removeprefix("stale: "))
    if existing.n_invalid:
        log.warning(
            "%s: %d records failed for an input reason (listed in %s and its manifest)",
            job.fasta,
            existing.n_invalid,
            failure_log,
        )
    message = "valid output exists" + (f" ({existing.reason})" if existing.reason else "")
    n = existing.n_invalid
    return FileResult(job, SKIPPED, n_failed=n, n_invalid=n, message=message)


def finished_before_death(job: FileJob) -> bool:
    """True when a worker that died had completed `job` (output and its complete manifest
    for this very input) but could not say so."""
    try:
        manifest = read_manifest(job.output)
    except ManifestError:
        return False
    if manifest is None or not is_complete(manifest) or not job.output.exists():
        return False
    try:
        load_embeddings(job.output)
        return manifest.get("input", {}).get("sha256") == sha256_of(job.fasta)
    except (OutputError, OSError):
        return False
