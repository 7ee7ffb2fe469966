"""What a run would do, decided before any model is loaded (`plan`, `extract --dry-run`).

Each job's output is examined against the model's identity (ID, revision, hidden size, read
from its config, never its weights) and the run's truncation: current outputs are kept,
stale ones reported, and only the rest need the model. A run with nothing to build
therefore never loads it, and `plan` prints the same verdicts with the disk they need.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ExtractionSettings, ModelSpec
from .currency import ModelIdentity
from .fasta import FastaError, read_fasta, record_ids
from .hub import locate_model, resolve_commit
from .jobs import FileJob
from .layout import lock_path, manifest_path
from .locks import describe_holder, is_stale
from .manifest import Provenance, sha256_of
from .model import DEFAULT_HIDDEN_SIZE, DEFAULT_MODEL, LoadedModel
from .resume import BUILD, ExistingOutput, examine_output

log = logging.getLogger("fastesm_extract")

# Bytes an output takes per record beyond its float32 values (ID, pickle and zip overhead),
# measured on 10,000-record outputs.
_BYTES_PER_RECORD_OVERHEAD = 160


def model_identity(spec: ModelSpec, settings: ExtractionSettings) -> ModelIdentity | None:
    """The identity of `spec`'s model without loading its weights; None when it cannot be
    known that way (then the model is loaded, and reports its own problems)."""
    trunc = settings.truncation_seq_length
    model = spec.model
    if isinstance(model, LoadedModel):
        return Provenance.of(model, trunc, settings.toks_per_batch).identity
    if isinstance(model, torch.nn.Module):
        config = model.config
        name = getattr(config, "name_or_path", "") or type(model).__name__
        return ModelIdentity(
            model_id=name, hidden_size=int(config.hidden_size), truncation_seq_length=trunc
        )
    commit = None
    try:  # offline, a cached config or nothing, without hub retries (the load says why)
        source = locate_model(model, spec.revision)
        local = source.local_files_only
        commit = source.cached_commit if local else resolve_commit(model, spec.revision)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            model, revision=commit or spec.revision, trust_remote_code=True, local_files_only=local
        )
        hidden_size = int(config.hidden_size)
    except Exception:  # noqa: BLE001 - unknown without loading: the load will say why
        if model != DEFAULT_MODEL:
            return None
        hidden_size = DEFAULT_HIDDEN_SIZE
    return ModelIdentity(
        model_id=model,
        revision=spec.revision,
        commit_hash=commit,
        hidden_size=hidden_size,
        truncation_seq_length=trunc,
    )


@dataclass(frozen=True)
class PlannedJob:
    """One job's verdict before the model is loaded."""

    job: FileJob
    existing: ExistingOutput
    locked_by: str | None = None  # another live run holds its lock
    n_records: int | None = None  # records to embed (plan only, for outputs to build)
    output_bytes: int = 0  # disk the output will take (plan only, estimated)


def examine_job(
    job: FileJob, identity: ModelIdentity, settings: ExtractionSettings
) -> ExistingOutput:
    """The verdict on `job.output`; BUILD when the input cannot be read (the run reports it).

    Reads nothing when there is nothing to examine (no output, no manifest), and never
    reads an input that is not a regular file (a pipe can be read only once: by the run).
    """
    if not settings.overwrite and not (job.output.exists() or manifest_path(job.output).exists()):
        return ExistingOutput(BUILD)
    if not _is_regular(job.fasta):
        return ExistingOutput(BUILD)
    try:
        return examine_output(
            job,
            identity,
            sha256_of(job.fasta),
            input_ids=lambda: record_ids(read_fasta(job.fasta)),
            overwrite=settings.overwrite,
            redo_stale=settings.redo_stale,
        )
    except (OSError, FastaError) as error:
        return ExistingOutput(BUILD, f"cannot read the input: {error}")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


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
