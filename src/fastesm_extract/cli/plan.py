"""`fastesm-extract plan` / `extract --dry-run`: print what a run would do, load no model."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.failures import FailureKind
from fastesm_extract.disk.fasta import read_fasta
from fastesm_extract.disk.locks import live_lock_holder
from fastesm_extract.disk.verdict import CURRENT, INVALID, LOCKED, REBUILD, OutputVerdict
from fastesm_extract.errors import FastaError, InputError
from fastesm_extract.extract.prepare import holds_only_nucleotides, refuse_nucleotide_records
from fastesm_extract.merge.beside import merged_not_current
from fastesm_extract.model.identity import ModelIdentity
from fastesm_extract.results import FileJob, RunSummary, summary_as_dict
from fastesm_extract.running.config import RunConfig
from fastesm_extract.running.examine import (
    examine_job,  # AUTO
    model_identity,
)
from fastesm_extract.running.rates import device_label, known_rate, rate_model
from fastesm_extract.running.shards import shard_jobs
from fastesm_extract.settings import ExtractionSettings

log = logging.getLogger("fastesm_extract")

# What each action means for the run's exit status: these leave an output not current.
_NOT_CURRENT = {"stale", "invalid", "nucleotide", "locked"}
NUCLEOTIDE = FailureKind.NUCLEOTIDE_SEQUENCE


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def print_plan(jobs: list[FileJob], config: RunConfig) -> tuple[int, dict]:
    """Print the plan for `jobs` (this shard's share) and return (exit status, JSON data).

    The exit status is the one the run would give if every file to write succeeded.
    """
    ready = shard_jobs(jobs, config.shard) if config.shard is not None else list(jobs)
    refuse_unwritable_folders(ready)
    identity = model_identity(config.model, config.settings)
    if identity is None:
        print(
            f"fastesm-extract plan: cannot read the configuration of {config.model.model!r} "
            "without loading it: every output is listed as to write",
            file=sys.stderr,
        )
        return 1, {"error": f"cannot read the configuration of {config.model.model!r}"}
    planned = [plan_job(job, identity, config.settings, config.failure_log) for job in ready]
    actions = Counter(action_of(item) for item in planned)
    print(f"{'action':8} {'records':>8} {'disk':>9}  output  (reason)")
    for item in planned:
        action = action_of(item)
        records = "-" if item.n_records is None else str(item.n_records)
        disk = _size(item.output_bytes) if item.output_bytes else "-"
        why = item.locked_by and f"held by {item.locked_by}" or item.existing.reason
        if item.n_invalid and not why:
            why = f"{item.n_invalid} records are invalid input"
        print(
            f"{action:8} {records:>8} {disk:>9}  {item.job.output}" + (f"  ({why})" if why else "")
        )
    total = sum(item.output_bytes for item in planned)
    shard = config.shard
    share = (
        f" (shard {shard.index + 1}/{shard.count}: {len(ready)} of {len(jobs)} files)"
        if shard
        else ""
    )
    counts = ", ".join(f"{actions[name]} {name}" for name in sorted(actions)) or "no files"
    folders = sorted({item.job.output.parent for item in planned})
    free = free_bytes(Path(folders[0])) if folders else None
    room = f"; {_size(free)} free" if free is not None else ""
    print(
        f"fastesm-extract plan{share}: {counts}; output disk needed about {_size(total)}{room}; "
        f"model {identity.model_id} (hidden size {identity.hidden_size}) not loaded",
        file=sys.stderr,
    )
    to_embed = sum(
        item.n_records or 0 for item in planned if action_of(item) in ("write", "rebuild")
    )
    print_time_estimate(config, identity, to_embed)
    not_current = sum(actions[name] for name in _NOT_CURRENT if name != "stale")
    if not config.settings.accept_stale:
        not_current += actions["stale"]
    # Records of files written or kept that fail for an input reason fail the run too.
    invalid = sum(item.n_invalid for item in planned if action_of(item) not in _NOT_CURRENT)
    if invalid and not config.settings.accept_invalid:
        not_current += 1
        print(
            f"  {invalid} records are invalid input and fail the run (the failure log lists "
            "them): --accept-invalid accepts them",
            file=sys.stderr,
        )
    if actions["stale"]:
        print(
            "  stale outputs are kept and fail the run: --redo-stale rebuilds them, "
            "--accept-stale accepts them",
            file=sys.stderr,
        )
    merged = merged_not_current(
        (item.job.output, action_of(item) in ("write", "rebuild")) for item in planned
    )
    for path, why in merged:
        print(f"{'merge':8} {'-':>8} {'-':>9}  {path}  ({why})")
    if merged:
        not_current += len(merged)
        print(
            f"  {len(merged)} merged files beside these outputs are not current: run "
            "`fastesm-extract merge` again once the outputs are",
            file=sys.stderr,
        )
    if free is not None and total > free:
        print(
            f"  WARNING: not enough free disk ({_size(free)}) for {_size(total)}", file=sys.stderr
        )
    status = 1 if not_current else 0
    data = plan_as_dict(planned, identity, config.failure_log)
    data["plan"]["merged"] = [{"output": str(path), "reason": why} for path, why in merged]
    return status, data


def print_time_estimate(config: RunConfig, identity: ModelIdentity, records: int) -> None:
    """Time to embed `records`, from the last measured rate of this model on this device."""
    if not records:
        return
    device = device_label(config.devices)
    model_id = identity.model_id
    by_name = isinstance(config.model.model, str)
    rate = known_rate(rate_model(identity, model_id), device) if by_name else None
    if rate is None:
        print(
            f"  time: unknown for {model_id} on {device} (no run measured yet; a run records "
            "its rate)",
            file=sys.stderr,
        )
        return
    seconds = records / rate.records_per_s
    hours, rest = divmod(int(round(seconds)), 3600)
    print(
        f"  time: about {hours}:{rest // 60:02d}:{rest % 60:02d} for {records} records at "
        f"{rate.records_per_s:.0f} records/s (measured on {device}, {rate.measured})",
        file=sys.stderr,
    )


# Bytes an output takes per record beyond its float32 values (ID, pickle and zip overhead),
# measured on 10,000-record outputs.
_BYTES_PER_RECORD_OVERHEAD = 160


@dataclass(frozen=True)
class PlannedJob:
    """One job's verdict before the model is loaded."""

    job: FileJob
    existing: OutputVerdict
    locked_by: str | None = None  # another live run holds its lock
    n_records: int | None = None  # records to embed (plan only, for outputs to build)
    output_bytes: int = 0  # disk the output will take (plan only, estimated)
    nucleotide: bool = False  # every record is DNA/RNA: the run refuses the file
    n_invalid: int = 0  # records that fail for an input reason: the run exits 1 for them


def plan_job(
    job: FileJob,
    identity: ModelIdentity,
    settings: ExtractionSettings,
    failure_log: Path | None = None,
) -> PlannedJob:
    """`examine_job`, plus what `plan` shows: lock holder, records and disk to write, and
    whether the run refuses the file as nucleotide (the DNA side of a pair)."""
    existing = examine_job(job, identity, settings, failure_log, lock_holder=live_lock_holder)
    if existing.verdict == LOCKED:
        return PlannedJob(
            job, existing, locked_by=existing.reason.removeprefix("being computed by ")
        )
    kinds = existing.invalid_kinds
    if existing.verdict == INVALID and all(kind == NUCLEOTIDE for kind in kinds):
        return PlannedJob(job, _nucleotide(existing), n_records=existing.n_read, nucleotide=True)
    if existing.verdict != REBUILD:
        return PlannedJob(job, existing, n_invalid=existing.n_invalid)
    try:
        contents = read_fasta(job.fasta)
    except (OSError, FastaError) as error:  # the run fails the file: exit 1
        return PlannedJob(job, OutputVerdict(INVALID, f"cannot be read: {error}"))
    n_records = contents.n_read
    if holds_only_nucleotides(contents):
        return PlannedJob(job, _nucleotide(existing), n_records=n_records, nucleotide=True)
    n_invalid = len(refuse_nucleotide_records(contents).failures)  # as the run refuses them
    if n_invalid == n_records:  # nothing to embed: the run fails the file
        reason = f"none of its {n_records} records is valid input"
        return PlannedJob(job, OutputVerdict(INVALID, reason), n_records=n_records)
    bytes_per_record = identity.hidden_size * 4 + _BYTES_PER_RECORD_OVERHEAD
    size = (n_records or 0) * bytes_per_record
    return PlannedJob(job, existing, None, n_records, size, n_invalid=n_invalid)


def _nucleotide(existing: OutputVerdict) -> OutputVerdict:
    """The run refuses the file (exit 1): the verdict's reason says why and the way out."""
    reason = "holds nucleotide sequences, the DNA side of the pair? --exclude GLOB leaves it out"
    return dataclasses.replace(existing, reason=reason)


def plan_as_dict(planned: list[PlannedJob], identity: ModelIdentity, failure_log: Path) -> dict:
    """JSON-ready plan (`plan --summary-json`): a run's schema, with `files` counted by
    action as a run counts them by status, and each file's verdict under `plan`."""
    data = summary_as_dict(RunSummary(failure_log=failure_log), command="plan")
    data["files"] = dict(sorted(Counter(action_of(item) for item in planned).items()))
    data["plan"] = {
        "model": identity.model_id,
        "hidden_size": identity.hidden_size,
        "output_bytes": sum(item.output_bytes for item in planned),
        "files": [
            {
                "input": str(item.job.fasta),
                "output": str(item.job.output),
                "action": action_of(item),
                "reason": item.existing.reason,
                "records": item.n_records,
                "invalid_records": item.n_invalid,
                "output_bytes": item.output_bytes,
            }
            for item in planned
        ],
    }
    return data


def action_of(item: PlannedJob) -> str:
    """write, rebuild, skip, stale, invalid, nucleotide or locked."""
    if item.locked_by is not None:
        return "locked"
    verdict = item.existing.verdict
    if item.nucleotide:
        return "nucleotide"
    if verdict == REBUILD:
        return "rebuild" if item.job.output.exists() or item.existing.reason else "write"
    return "skip" if verdict == CURRENT else str(verdict)


def refuse_unwritable_folders(jobs: list[FileJob]) -> None:
    """Raise `InputError` where the run's `check_writable` would, creating nothing (a plan
    writes nothing): the nearest existing folder of each output folder must take files."""
    for folder in sorted({job.output.parent for job in jobs}):
        existing = next(path for path in (folder, *folder.parents) if os.path.lexists(path))
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            why = "not a folder" if not existing.is_dir() else "permission denied"
            raise InputError(f"cannot write outputs to {folder}: {existing}: {why}")


def free_bytes(folder: Path) -> int | None:
    """Free space where outputs go (the nearest existing folder)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            stats = os.statvfs(candidate)
            return stats.f_bavail * stats.f_frsize
    return None
