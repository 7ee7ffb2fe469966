"""Python front ends: the VirNucPro drop-in `extract_fast_esm`, many-files `extract_files`
and one large FASTA `extract_split`. Each builds a `RunConfig`, picks a job source, runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from typing_extensions import Unpack

from fastesm_extract.api.models import model_for_call, models_by_name
from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.disk.split import SplitPart
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.disk.verdict import INVALID, REBUILD, STALE
from fastesm_extract.errors import StaleOutputError
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.model.identity import ModelIdentity, identity_of
from fastesm_extract.model.load import DEFAULT_HIDDEN_SIZE, DEFAULT_MODEL, LoadedModel
from fastesm_extract.results import FileJob, RunSummary
from fastesm_extract.running.config import ModelSpec, RunOptions, options_from, resolve_config
from fastesm_extract.running.examine import examine_job, model_identity
from fastesm_extract.running.runner import run
from fastesm_extract.running.sources import SplitSource, file_jobs
from fastesm_extract.settings import (
    DEFAULT_DEVICE,
    DEFAULT_TOKS_PER_BATCH,
    DEFAULT_TRUNCATION_SEQ_LENGTH,
    ExtractionSettings,
)

log = logging.getLogger("fastesm_extract")


def call_identity(
    loaded: LoadedModel | None, settings: ExtractionSettings, device: str
) -> ModelIdentity:
    """What makes this call's output current; for the default model, known without loading
    it unless it is loaded already (on this call's device)."""
    loaded = loaded or models_by_name.loaded(DEFAULT_MODEL, device)
    if loaded is None:  # by name, without asking the hub (a resumed loop calls this per file)
        trunc = settings.truncation_seq_length
        return identity_of(
            DEFAULT_MODEL, hidden_size=DEFAULT_HIDDEN_SIZE, truncation_seq_length=trunc
        )
    return model_identity(ModelSpec(loaded), settings)


def finished_output(
    job: FileJob,
    loaded: LoadedModel | None,
    settings: ExtractionSettings,
    device: str,
    accept_stale: bool = False,
) -> tuple[list[str], list[torch.Tensor]] | None:
    """The contents of `job.output` when it is current (or stale and `accept_stale`); None
    when it must be computed. Raises `StaleOutputError` for another model's or truncation's
    output: a script must not carry such features on as this model's."""
    if settings.overwrite or not job.output.exists():
        return None
    existing = examine_job(job, call_identity(loaded, settings, device), settings)
    if existing.verdict in (REBUILD, INVALID):
        if existing.reason and existing.verdict == REBUILD:
            log.warning("existing output %s will be rebuilt: %s", job.output, existing.reason)
        return None
    if existing.verdict == STALE and not accept_stale:
        raise StaleOutputError(
            f"{job.output} is {existing.reason}: its features are not this model's. Pass "
            "redo_stale=True to rebuild it, or accept_stale=True to take them on purpose"
        )
    if existing.verdict == STALE:
        log.warning("%s is %s: returned as accept_stale=True asks", job.output, existing.reason)
    else:
        log.info("%s: valid output exists, not recomputed", job.output)
    return load_embeddings(job.output)


def extract_fast_esm(
    fasta_file: str | Path,
    out_file: str | Path | None = None,
    model: str | torch.nn.Module | LoadedModel | None = None,
    tokenizer: object | None = None,
    truncation_seq_length: int = DEFAULT_TRUNCATION_SEQ_LENGTH,
    toks_per_batch: int = DEFAULT_TOKS_PER_BATCH,
    *,
    device: str | None = None,
    failure_log: str | Path | None = None,
    overwrite: bool = False,
    redo_stale: bool = False,
    accept_stale: bool = False,
    compile: bool = False,
    compile_cache: str | Path | None = None,
) -> tuple[list[str], list[torch.Tensor]]:
    """Embed one FASTA file; drop-in for VirNucPro's `units.extract_fast_esm`.

    Returns `(proteins, data)`: record IDs in FASTA order and float32 tensors of shape
    `(hidden_size,)`. With `out_file`, also writes `{'proteins', 'data'}` there atomically,
    with its manifest `<out_file>.json`, unless no record could be embedded. An `out_file`
    that already exists, loads and validates is returned as it is, without running (or
    loading) the model, as the CLI skips it; a stale one (another model, hidden size or
    truncation) raises `StaleOutputError` naming why, unless `redo_stale` (rebuilt) or
    `accept_stale` (returned on purpose); one of another input, or invalid or unfinished, is
    rebuilt; `overwrite` recomputes.
    `model`/`tokenizer` are a preloaded Hugging Face model (SDPA) and its tokenizer (without
    one: the model's `tokenizer` attribute, else its checkpoint's), or a `LoadedModel`; or
    `model` is a hub ID or folder. A model given by name, or FastESM2_650 without `model`, is
    loaded once per process on `device` (default "cuda"; "cpu" on purpose). Bad records are
    skipped and appended to `failure_log` (default `./extraction_failures.log`); a file that
    cannot be read raises `FastaError`, and so does a file whose every record is invalid
    (`NoUsableRecordsError`), after its records are appended to the log as the CLI does.
    `compile` runs the forward through torch.compile (see `extract_files`); called once per
    file, later calls reuse the compiled graphs.
    """
    given = dict(locals())  # the parameters named as the run's keywords (RunOptions)
    device = str(device) if device is not None else None
    chosen = dict(model=DEFAULT_MODEL if model is None else model, device=device or DEFAULT_DEVICE)
    config = resolve_config(**options_from(given, show_progress=False, **chosen))
    outputs = [out_file, manifest_path(out_file)] if out_file is not None else []
    refuse_writing_over_inputs(
        [fasta_file], [config.failure_log, *outputs], "give another out_file"
    )
    loaded = None if model is None else model_for_call(model, tokenizer, device)
    job = FileJob(Path(fasta_file), Path(out_file) if out_file is not None else None)
    if job.output is not None:  # a current output is returned without loading the model
        finished = finished_output(
            job, loaded, config.settings, config.devices[0], accept_stale=accept_stale
        )
        if finished is not None:
            return finished
    loaded = loaded or model_for_call(None, device=device)
    failures = FailureLog(config.failure_log)
    # A one-job run: the same claim -> prepare -> compute -> publish as every entry point.
    extractor = Extractor(loaded, config.settings, failures, show_progress=False, raise_errors=True)
    return extractor.embed_one(job)


def extract_files(
    inputs: Sequence[str | Path],
    output_dir: str | Path | None = None,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    **options: Unpack[RunOptions],
) -> RunSummary:
    """Embed many FASTA files (or folders of them) with the model loaded once per device.

    The keywords are `resolve_config`'s, which says what each means: `model` (hub ID,
    folder, module or `LoadedModel`), `tokenizer`, `revision`, `dtype`, `device` or
    `devices`, `shard`, `toks_per_batch`, `truncation_seq_length`, `overwrite`,
    `redo_stale`, `accept_invalid`, `accept_stale`, `failure_log`, `show_progress`,
    `compile` (run the forward through torch.compile: worth it for long GPU runs; manifests
    record it) and `compile_cache` (the folder of its on-disk caches, which later runs and
    workers reuse).

    `include` and `exclude` are the CLI's `--include`/`--exclude` globs: which FASTA
    files found in folders to take (matched against a file's name or its path relative to
    the folder given). Outputs go beside each input, or under `output_dir` keeping folder
    layout. Current
    outputs are skipped unless `overwrite` (the model is not loaded when nothing needs
    computing); an output whose input changed is rebuilt; one of another model or truncation
    is kept as stale (`summary.ok` False unless `accept_stale`), or rebuilt with
    `redo_stale`; with `accept_invalid`, records that failed for an input reason leave
    `summary.ok` True. `summary.to_dict()` is what `--summary-json` writes.
    Reading and writing overlap with compute. With several `devices` (the model given by
    name), one worker process per device takes files as it frees up; with a `shard`, only
    that share of the files is done, and a torchrun shard (`shard_from_environment()`) puts
    the default device "cuda" on the rank's own GPU, `cuda:LOCAL_RANK`.
    """
    config = resolve_config(log_dir=output_dir, **options)
    jobs = file_jobs(list(inputs), output_dir, config.failure_log, include, exclude)
    return run(jobs, config)


def extract_split(
    fasta: str | Path, output_dir: str | Path, records_per_part: int, **options: Unpack[RunOptions]
) -> tuple[list[SplitPart], RunSummary]:
    """Embed one large FASTA as `output_dir/output_1_ESM.pt`, `output_2_ESM.pt`, ...

    Parts of `records_per_part` records (VirNucPro's `split_fasta_file()` assignment) are
    written to `output_dir/parts/`, then embedded; `options` are `extract_files`' (model,
    devices, shard, settings, ...). With one
    device the model is loaded first, so a model problem is reported before any splitting.
    Returns the parts and the run's summary. Raises `InputError` when `fasta` is not a file
    and `FastaError` when it is not FASTA.
    """
    config = resolve_config(log_dir=output_dir, **options)
    source = SplitSource(fasta, output_dir, records_per_part, config.failure_log)
    summary = run(source.jobs, config)
    return source.parts, summary
