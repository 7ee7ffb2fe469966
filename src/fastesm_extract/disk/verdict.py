"""Is this output current? One answer, `judge(output, basis)`, for every output the tool
writes and every part of it that asks (plan, the runner's pre-scan, the claim, the drop-in,
merge), in one vocabulary: `Verdict` CURRENT, REBUILD (why), STALE (why), LOCKED, INVALID.
The rules of what makes an output current are in `currency`; the model's identity is built
in `model.identity`.

For an `_ESM.pt` (`EsmBasis`), decided from the output itself and its manifest, never by
recomputing:
- no output, `--overwrite`, an output that does not load, or a damaged manifest -> rebuild;
- a pending manifest (a run died between output and manifest) -> rebuild;
- an output that is not the one its manifest describes (copied or moved over it) -> rebuild;
- the input content changed since the output was made -> rebuild;
- an output with 0 records, or one whose manifest lists records that failed for a passing
  reason (out of memory, batch error, ...) -> rebuild, so those records are retried;
- another model or truncation -> stale: kept and reported (rebuilt with `--redo-stale`);
- an output without manifest (the original pipeline's) -> current when its IDs are its
  input's, rebuilt when they are not, stale when of another width;
- otherwise current: skipped, and records that failed for an input reason are reported again.
A file none of whose records is valid input has no output, only a "failed" record kept
beside the failure log (`invalid_inputs.py`): while its input and model are unchanged it is
INVALID, reported again without being re-read into the failure log.

For a merged file (`MergedBasis`) and for the ESM side of a merge (`MergeInputBasis`), see
their sections below.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from fastesm_extract.disk.currency import (
    input_changed,
    manifest_model_key,
    model_differences,
    other_output,
)
from fastesm_extract.disk.failures import FailureKind, is_input_failure
from fastesm_extract.disk.file_identity import recorded_sha256
from fastesm_extract.disk.invalid_inputs import remembered_invalid_input
from fastesm_extract.disk.manifest import (
    COMPLETE,
    ManifestError,
    file_identity,
    is_complete,
    load_manifest,
    read_manifest_json,
    sha256_of,
)
from fastesm_extract.disk.manifest_schema import Manifest
from fastesm_extract.disk.store import load_embeddings, load_weights_only
from fastesm_extract.errors import OutputError
from fastesm_extract.model.identity import ModelIdentity
from fastesm_extract.results import FileJob

log = logging.getLogger("fastesm_extract")


class Verdict(str, Enum):
    """The one answer to "is this output current?", for an `_ESM.pt` or a merged file."""

    CURRENT = "current"  # keep it (the run reports it SKIPPED)
    REBUILD = "rebuild"  # (re)compute it; the reason says why when one exists
    STALE = "stale"  # another model or truncation: kept and reported (--redo-stale rebuilds)
    LOCKED = "locked"  # another live run is computing it
    INVALID = "invalid"  # no output: every record is invalid input, unchanged since reported

    def __str__(self) -> str:
        return self.value


CURRENT, REBUILD, STALE, LOCKED, INVALID = Verdict


@dataclass(frozen=True)
class OutputVerdict:
    """The verdict on the output of a job, and why (for the log; empty when nothing to say)."""

    verdict: Verdict
    reason: str = ""
    n_invalid: int = 0  # records the manifest lists as failed for an input reason
    n_read: int = 0  # INVALID: the records of the input
    invalid_kinds: tuple[str, ...] = ()  # the failure kind of each of those records


def _invalid_input_verdict(record: Path | None, identity: ModelIdentity, input_sha256: str):
    """INVALID for an input whose "failed" manifest (at `record`) still describes it; else
    REBUILD."""
    manifest = remembered_invalid_input(record) if record is not None else None
    if manifest is None:
        return OutputVerdict(REBUILD)
    if input_changed(manifest, input_sha256) or model_differences(manifest, identity):
        return OutputVerdict(REBUILD)
    kinds = manifest.records.failed_kinds
    n = len(kinds)
    n_read = manifest.records.read if manifest.records.read is not None else n
    return OutputVerdict(INVALID, "none of its records is valid input", n, n_read, kinds)


def judge_output(
    job: FileJob,
    identity: ModelIdentity,
    input_sha256: str,
    *,
    input_ids: Callable[[], list[str]] | None = None,
    overwrite: bool = False,
    redo_stale: bool = False,
    invalid_record: Path | None = None,
) -> OutputVerdict:
    """What to do with `job.output` for a run of `identity` over an input of this hash.

    `input_ids` gives the input's record IDs, read only for an output without manifest.
    `invalid_record` is where a run remembers an input with no valid record
    (`layout.invalid_input_record`; None: not looked for).
    """
    if overwrite:
        return OutputVerdict(REBUILD)
    if not job.output.exists():
        return _invalid_input_verdict(invalid_record, identity, input_sha256)
    proteins: list[str] = []
    if (described := _described_output(job.output)) is not None:
        n_records, dimension = described  # unchanged since its manifest: not loaded
    else:
        try:
            proteins, data = load_embeddings(job.output)  # any dimension: another's is stale
        except OutputError as error:
            return OutputVerdict(REBUILD, f"existing output is unusable: {error}")
        n_records, dimension = len(proteins), int(data[0].shape[0]) if proteins else 0
    try:
        manifest = load_manifest(job.output)
    except ManifestError as error:  # ours, and no longer telling what the output is
        return OutputVerdict(REBUILD, str(error))
    if manifest is not None and not is_complete(manifest):
        return OutputVerdict(REBUILD, "it was never completed (its run was interrupted)")
    if not n_records:
        return OutputVerdict(REBUILD, "it holds no embeddings")
    if manifest is None:
        return _without_manifest(proteins, dimension, identity, input_ids, redo_stale)
    if swapped := _other_output(job.output, manifest, n_records):
        return OutputVerdict(REBUILD, swapped)
    if input_changed(manifest, input_sha256):
        return OutputVerdict(REBUILD, "the input changed since it was made")
    reasons = model_differences(manifest, identity)
    if not reasons and dimension != identity.hidden_size:
        reasons = [f"{dimension} dimensions, this model gives {identity.hidden_size}"]
    if reasons:
        return OutputVerdict(REBUILD if redo_stale else STALE, "stale: " + "; ".join(reasons))
    failed_ids = manifest.records.failed_ids
    kinds = list(manifest.records.failed_kinds)
    if len(kinds) != len(failed_ids):  # an older manifest: why they failed is unknown
        kinds = [FailureKind.UNKNOWN] * len(failed_ids)
    passing = [kind for kind in kinds if not is_input_failure(kind)]
    if passing:
        shown = ", ".join(sorted(set(passing)))
        return OutputVerdict(REBUILD, f"retrying {len(passing)} records that failed ({shown})")
    return OutputVerdict(CURRENT, n_invalid=len(kinds), invalid_kinds=tuple(kinds))


def _other_output(output: Path, manifest: Manifest, n_records: int) -> str:
    recorded = manifest.output
    size = os.stat(output).st_size
    if recorded is not None and recorded.size != size:
        return other_output(manifest, size, "", n_records)  # no need to hash it
    digest = (recorded_sha256(output, recorded) or sha256_of(output)) if recorded else ""
    return other_output(manifest, size, digest, n_records)


def _described_output(output: Path) -> tuple[int, int] | None:
    """(records, dimension) of an output whose complete manifest recorded the stat identity
    it still has: the manifest says what loading it would (file_identity.py); else None."""
    try:
        manifest = load_manifest(output)
    except ManifestError:
        return None
    if manifest is None or not is_complete(manifest) or manifest.output is None:
        return None
    records, dimension = manifest.records.embedded, manifest.model.hidden_size
    if not records or not dimension or recorded_sha256(output, manifest.output) is None:
        return None
    return records, dimension


def known_input_sha256(job: FileJob) -> str:
    """The sha256 of `job.fasta`: its output's manifest's while the file keeps the stat
    identity recorded there (file_identity.py), else hashed."""
    try:
        manifest = load_manifest(job.output) if job.output is not None else None
    except ManifestError:
        manifest = None
    recorded = manifest.input if manifest is not None else None
    return recorded_sha256(job.fasta, recorded) or sha256_of(job.fasta)


def _without_manifest(
    proteins: list[str],
    dimension: int,
    identity: ModelIdentity,
    input_ids: Callable[[], list[str]] | None,
    redo_stale: bool,
) -> OutputVerdict:
    """An output of the original pipeline (or of a tool that writes no manifest)."""
    if dimension != identity.hidden_size:
        reason = f"stale: {dimension} dimensions, this model gives {identity.hidden_size}"
        return OutputVerdict(REBUILD if redo_stale else STALE, reason)
    if input_ids is not None:
        expected, found = Counter(input_ids()), Counter(proteins)
        if found != expected:
            differing = sum(((found - expected) + (expected - found)).values())
            return OutputVerdict(
                REBUILD, f"it has no manifest and its IDs are not its input's ({differing} differ)"
            )
    return OutputVerdict(CURRENT, "no manifest")


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
        return not input_changed(manifest, known_input_sha256(job))
    except (OutputError, OSError):
        return False


# -- merged files (`X_merged.pt`: DNABERT-S + ESM rows) ------------------------------------

MERGED_KIND = "merged"  # the `kind` of a merged file's manifest


@dataclass(frozen=True, kw_only=True)
class MergedBasis:
    """What a current merged file was made from; `merge()` computes the merge (called only
    for a merged file without manifest, to compare)."""

    dnabert_s: Path
    esm: Path
    labels: list[int] | None
    merge: Callable[[], Any]
    overwrite: bool = False
    redo_stale: bool = False


def read_merged_manifest(output: Path) -> dict | None:
    """The merged file's manifest; None when absent, {} when unusable (so rebuilt)."""
    try:
        content = read_manifest_json(output)
    except ManifestError:
        return {}
    return content if content is None or isinstance(content, dict) else {}


def _judge_merged(output: Path, basis: MergedBasis) -> OutputVerdict:
    """The verdict on merged file `output` for a merge of `basis`' inputs."""
    dnabert_s, esm, labels, merge = basis.dnabert_s, basis.esm, basis.labels, basis.merge
    if not output.exists():
        return OutputVerdict(REBUILD)
    manifest = read_merged_manifest(output)
    if manifest is None:
        return _merged_without_manifest(output, (dnabert_s, esm), labels, merge)
    if manifest.get("kind") != MERGED_KIND or manifest.get("state") != COMPLETE:
        return OutputVerdict(REBUILD, "its manifest is damaged or unfinished")
    if manifest.get("output") != file_identity(output):
        return OutputVerdict(REBUILD, "it is not the merged file its manifest describes")
    inputs = manifest.get("inputs") or {}
    for side, path in (("dnabert_s", dnabert_s), ("esm", esm)):
        if (inputs.get(side) or {}).get("sha256") != sha256_of(path):
            name = "DNABERT-S" if side == "dnabert_s" else "ESM"
            return OutputVerdict(REBUILD, f"its {name} input changed since it was made")
    if manifest.get("labels") != labels:
        return OutputVerdict(REBUILD, f"labels {manifest.get('labels')} != {labels}")
    return OutputVerdict(CURRENT)


def _merged_without_manifest(
    output: Path, inputs: tuple[Path, Path], labels: list[int] | None, merge: Callable[[], Any]
) -> OutputVerdict:
    """An old merged file (the original pipeline's, or from before manifests): current when
    equal to its inputs' merge; rebuilt when an input is newer than it (re-extracted since);
    otherwise stale when of another width (another model's features), else rebuilt."""
    try:
        content = load_weights_only(output)
        old = content["data"]
        old_ids = content["ids"]
    except Exception:  # noqa: BLE001 - an unloadable or odd merged file is simply redone
        return OutputVerdict(REBUILD, "it does not load as a merged file")
    if not isinstance(old, torch.Tensor) or old.layout != torch.strided or old.dim() != 2:
        return OutputVerdict(REBUILD, "it does not hold a dense (rows, width) block")
    result = merge()
    width = int(result.data.shape[1])
    same = (
        old_ids == result.ids
        and content.get("labels") == labels
        and old.dtype == result.data.dtype
        and torch.equal(old, result.data)
    )
    if same:
        return OutputVerdict(CURRENT, "no manifest: equal to the merge of its inputs")
    made = output.stat().st_mtime
    if newer := [path.name for path in inputs if path.stat().st_mtime > made]:
        return OutputVerdict(REBUILD, f"{' and '.join(newer)} changed since it was made")
    if old.shape[1] != width:
        return OutputVerdict(
            STALE, f"{old.shape[1]} wide (another model), its inputs now merge to {width}"
        )
    return OutputVerdict(REBUILD, "no manifest, and not the merge of its inputs as they are now")


# -- an `_ESM.pt` about to be merged (its FASTA is not at hand) ------------------------------


@dataclass(frozen=True, kw_only=True)
class MergeInputBasis:
    """The ESM side of a merge: current when its manifest names the merge's model
    (`model_key`, see `ModelIdentity.key`) or, without manifest, when `width` wide."""

    model_key: str | None
    model_name: str
    width: int | None
    actual_width: int | None  # the file's own width


def _judge_merge_input(esm: Path, basis: MergeInputBasis) -> OutputVerdict:
    try:
        manifest = load_manifest(esm)
    except ManifestError as error:
        return OutputVerdict(REBUILD, f"re-extract it: {error}")
    if manifest is not None and not is_complete(manifest):
        return OutputVerdict(REBUILD, "re-extract it: its run never completed it")
    if manifest is not None:
        key = manifest_model_key(manifest.model)
        if basis.model_key is not None and key != basis.model_key:
            return OutputVerdict(
                STALE, f"made by {manifest.model.id!r}, this merge's model is {basis.model_name!r}"
            )
        return OutputVerdict(CURRENT)
    if basis.width is not None and basis.actual_width != basis.width:
        return OutputVerdict(
            STALE,
            f"{basis.actual_width}-dim without manifest (another model's features), this merge "
            f"is {basis.width}-dim ({basis.model_name})",
        )
    return OutputVerdict(CURRENT, "no manifest")


# -- the one entry point -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EsmBasis:
    """What a current `_ESM.pt` was made from (see `judge_output`)."""

    job: FileJob
    identity: ModelIdentity
    input_sha256: str
    input_ids: Callable[[], list[str]] | None = None
    overwrite: bool = False
    redo_stale: bool = False
    invalid_record: Path | None = None


def judge(
    output: Path,
    basis: EsmBasis | MergedBasis | MergeInputBasis,
    *,
    lock_holder: Callable[[Path], str | None] | None = None,
) -> OutputVerdict:
    """Is `output` current for `basis`? CURRENT, REBUILD (why), STALE (why), LOCKED (when
    `lock_holder` names a live run computing it) or INVALID. Every part of the tool that
    asks (plan, the runner's pre-scan, the claim, the drop-in, merge) asks here."""
    if lock_holder is not None and (holder := lock_holder(output)) is not None:
        return OutputVerdict(LOCKED, f"being computed by {holder}")
    if isinstance(basis, MergeInputBasis):
        return _judge_merge_input(output, basis)
    if isinstance(basis, MergedBasis):
        if basis.overwrite:
            return OutputVerdict(REBUILD)
        verdict = _judge_merged(output, basis)
        if verdict.verdict == STALE and basis.redo_stale:
            return OutputVerdict(REBUILD, verdict.reason)
        return verdict
    return judge_output(
        basis.job,
        basis.identity,
        basis.input_sha256,
        input_ids=basis.input_ids,
        overwrite=basis.overwrite,
        redo_stale=basis.redo_stale,
        invalid_record=basis.invalid_record,
    )
