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
from pathlib import Path

import torch

from fastesm_extract.disk.currency import ModelIdentity
from fastesm_extract.disk.fasta import read_fasta, record_ids
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest import Provenance, sha256_of
from fastesm_extract.disk.resume import BUILD, ExistingOutput, examine_output
from fastesm_extract.errors import FastaError
from fastesm_extract.extract.publish import kept_result
from fastesm_extract.model.hub import locate_model, resolve_commit
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
        existing = examine_job(job, identity, config.settings)
        if existing.verdict == BUILD:
            to_build.append(job)
        else:
            kept[job] = kept_result(job, existing, config.failure_log)
    return to_build, kept
