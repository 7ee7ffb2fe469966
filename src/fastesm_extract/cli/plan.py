"""`fastesm-extract plan` / `extract --dry-run`: print what a run would do, load no model."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.currency import ModelIdentity
from fastesm_extract.disk.fasta import read_fasta
from fastesm_extract.disk.layout import lock_path
from fastesm_extract.disk.locks import describe_holder, is_stale
from fastesm_extract.disk.resume import BUILD, ExistingOutput
from fastesm_extract.errors import FastaError
from fastesm_extract.results import FileJob
from fastesm_extract.running.config import RunConfig
from fastesm_extract.running.examine import (
    examine_job,  # AUTO
    model_identity,
)
from fastesm_extract.running.rates import device_label, known_rate
from fastesm_extract.running.runner import ready_jobs
from fastesm_extract.settings import ExtractionSettings

log = logging.getLogger("fastesm_extract")

# What each action means for the run's exit status: these leave an output not current.
_NOT_CURRENT = {"stale", "invalid", "locked"}


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
    ready = ready_jobs(jobs, config)
    identity = model_identity(config.model, config.settings)
    if identity is None:
        print(
            f"fastesm-extract plan: cannot read the configuration of {config.model.model!r} "
            "without loading it: every output is listed as to write",
            file=sys.stderr,
        )
        return 1, {"ok": False, "error": "model identity unknown"}
    planned = [plan_job(job, identity, config.settings) for job in ready]
    actions = Counter(action_of(item) for item in planned)
    print(f"{'action':8} {'records':>8} {'disk':>9}  output  (reason)")
    for item in planned:
        action = action_of(item)
        records = "-" if item.n_records is None else str(item.n_records)
        disk = _size(item.output_bytes) if item.output_bytes else "-"
        why = item.locked_by and f"held by {item.locked_by}" or item.existing.reason
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
    print_time_estimate(config, identity.model_id, to_embed)
    not_current = sum(actions[name] for name in _NOT_CURRENT if name != "stale")
    if not config.settings.accept_stale:
        not_current += actions["stale"]
    if actions["stale"]:
        print(
            "  stale outputs are kept and fail the run: --redo-stale rebuilds them, "
            "--accept-stale accepts them",
            file=sys.stderr,
        )
    if free is not None and total > free:
        print(
            f"  WARNING: not enough free disk ({_size(free)}) for {_size(total)}", file=sys.stderr
        )
    status = 1 if not_current else 0
    return status, {**plan_as_dict(planned, identity), "ok": status == 0}


def print_time_estimate(config: RunConfig, model_id: str, records: int) -> None:
    """Time to embed `records`, from the last measured rate of this model on this device."""
    if not records:
        return
    device = device_label(config.devices)
    rate = known_rate(model_id, device) if isinstance(config.model.model, str) else None
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
    existing: ExistingOutput
    locked_by: str | None = None  # another live run holds its lock
    n_records: int | None = None  # records to embed (plan only, for outputs to build)
    output_bytes: int = 0  # disk the output will take (plan only, estimated)


def live_lock_holder(output: Path) -> str | None:
    """Who holds the lock of `output`, when a live run does."""
    path = lock_path(output)
    try:
        content, age = path.read_bytes(), max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None
    return None if is_stale(content, age) else describe_holder(content)


def plan_job(job: FileJob, identity: ModelIdentity, settings: ExtractionSettings) -> PlannedJob:
    """`examine_job`, plus what `plan` shows: lock holder, records and disk to write."""
    existing = examine_job(job, identity, settings)
    if existing.verdict != BUILD:
        return PlannedJob(job, existing)
    try:
        n_records = read_fasta(job.fasta).n_read
    except (OSError, FastaError):
        n_records = None
    bytes_per_record = identity.hidden_size * 4 + _BYTES_PER_RECORD_OVERHEAD
    size = (n_records or 0) * bytes_per_record
    return PlannedJob(job, existing, live_lock_holder(job.output), n_records, size)


def plan_as_dict(planned: list[PlannedJob], identity: ModelIdentity) -> dict:
    """JSON-ready plan (`plan --summary-json`)."""
    return {
        "model": identity.model_id,
        "hidden_size": identity.hidden_size,
        "files": [
            {
                "input": str(item.job.fasta),
                "output": str(item.job.output),
                "action": action_of(item),
                "reason": item.existing.reason,
                "records": item.n_records,
                "output_bytes": item.output_bytes,
            }
            for item in planned
        ],
        "output_bytes": sum(item.output_bytes for item in planned),
    }


def action_of(item: PlannedJob) -> str:
    """write, rebuild, skip, stale, invalid or locked."""
    if item.locked_by is not None:
        return "locked"
    verdict = item.existing.verdict
    if verdict == BUILD:
        return "rebuild" if item.job.output.exists() or item.existing.reason else "write"
    return {"finished": "skip"}.get(str(verdict), str(verdict))


def free_bytes(folder: Path) -> int | None:
    """Free space where outputs go (the nearest existing folder)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            stats = os.statvfs(candidate)
            return stats.f_bavail * stats.f_frsize
    return None
