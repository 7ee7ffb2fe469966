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
from collections.abc import Callable
from pathlib import Path

import torch

from fastesm_extract.disk.fasta import read_fasta, record_ids
from fastesm_extract.disk.layout import invalid_input_record, lock_path, manifest_path
from fastesm_extract.disk.verdict import (
    REBUILD,
    EsmBasis,
    OutputVerdict,
    judge,
    known_input_sha256,
)
from fastesm_extract.errors import FastaError
from fastesm_extract.extract.publish import kept_result
from fastesm_extract.model.hub import locate_model, resolve_commit
from fastesm_extract.model.identity import ModelIdentity, identity_of
from fastesm_extract.model.load import DEFAULT_HIDDEN_SIZE, DEFAULT_MODEL, LoadedModel
from fastesm_extract.results import FileJob, FileResult
from fastesm_extract.running.config import ModelSpec, RunConfig
from fastesm_extract.settings import (
    ExtractionSettings,
)

log = logging.getLogger("fastesm_extract")


def model_identity(spec: ModelSpec, settings: ExtractionSettings) -> ModelIdentity | None:
    """The identity of `spec`'s model without loading its weights; None when it cannot be
    known that way (then the model is loaded, and reports its own problems)."""
    trunc = settings.truncation_seq_length
    model = spec.model
    if isinstance(model, LoadedModel):
        return model.identity(trunc)
    if isinstance(model, torch.nn.Module):
        name = getattr(model.config, "name_or_path", "") or type(model).__name__
        hidden_size = int(model.config.hidden_size)
        return identity_of(name, hidden_size=hidden_size, truncation_seq_length=trunc, module=model)
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
        return identity_of(
            model,
            revision=spec.revision,
            commit_hash=commit,
            hidden_size=hidden_size,
            truncation_seq_length=trunc,
        )
    except Exception:  # noqa: BLE001 - unknown without loading: the load will say why
        if model != DEFAULT_MODEL:
            return None
    return identity_of(
        model, revision=spec.revision, hidden_size=DEFAULT_HIDDEN_SIZE, truncation_seq_length=trunc
    )


def examine_job(
    job: FileJob,
    identity: ModelIdentity,
    settings: ExtractionSettings,
    failure_log: Path | None = None,
    lock_holder: Callable[[Path], str | None] | None = None,
) -> OutputVerdict:
    """The verdict on `job.output`; REBUILD when the input cannot be read (the run reports it).
    With `failure_log`, an input remembered beside it as having no valid record is INVALID;
    with `lock_holder`, an output another live run is computing is LOCKED.

    Reads nothing when there is nothing to examine (no output, manifest or such record), and
    never reads an input that is not a regular file (a pipe can be read only once: by the run).
    """
    record = invalid_input_record(failure_log, job.output) if failure_log is not None else None
    side_files = (
        job.output,
        manifest_path(job.output),
        *([record] if record else []),
        *([lock_path(job.output)] if lock_holder else []),
    )
    if not settings.overwrite and not any(path.exists() for path in side_files):
        return OutputVerdict(REBUILD)
    if not _is_regular(job.fasta):
        return OutputVerdict(REBUILD)
    try:
        basis = EsmBasis(
            job=job,
            identity=identity,
            input_sha256=known_input_sha256(job),
            input_ids=lambda: record_ids(read_fasta(job.fasta)),
            overwrite=settings.overwrite,
            redo_stale=settings.redo_stale,
            invalid_record=record,
        )
        return judge(job.output, basis, lock_holder=lock_holder)
    except (OSError, FastaError) as error:
        return OutputVerdict(REBUILD, f"cannot read the input: {error}")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def kept_without_model(
    jobs: list[FileJob], config: RunConfig
) -> tuple[list[FileJob], dict[FileJob, FileResult]]:
    """(jobs that need the model, results of the outputs kept as they are)."""
    if config.settings.overwrite:
        return jobs, {}
    identity = model_identity(config.model, config.settings)
    if identity is None:
        return jobs, {}
    to_build, kept = [], {}
    for job in jobs:
        existing = examine_job(job, identity, config.settings, config.failure_log)
        if existing.verdict == REBUILD:
            to_build.append(job)
        else:
            kept[job] = kept_result(job, existing, config.failure_log)
    return to_build, kept
