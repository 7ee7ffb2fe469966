"""Python entry points: the VirNucPro drop-in `extract_fast_esm` and many-files `extract_files`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from .failures import FailureLog
from .jobs import FileJob, check_failure_log, check_writable, plan_jobs
from .layout import FAILURE_LOG_NAME, manifest_path
from .manifest import (
    Provenance,
    build_manifest,
    save_output_and_manifest,
    sha256_of,
    utc_now,
)
from .model import DEFAULT_HIDDEN_SIZE, DEFAULT_MODEL, LoadedModel, load_model, prepare_model
from .parallel import (
    Shard,
    WorkerSpec,
    check_devices,
    device_for_shard,
    run_on_devices,
    shard_jobs,
)
from .pipeline import (
    ExtractionSettings,
    Extractor,
    assemble_output,
    compute_file,
    prepare_file,
    warn_about_records,
)
from .resume import BUILD, STALE, examine_output
from .same_file import refuse_writing_over_inputs
from .store import load_embeddings
from .summary import FAILED, SKIPPED, WRITTEN, RunSummary

log = logging.getLogger("fastesm_extract")


@functools.lru_cache(maxsize=1)
def _default_model() -> LoadedModel:
    # Loaded once per process for callers that pass no model (SPEC 6). On CUDA only: without
    # a GPU this is a clear ModelLoadError, never a silent (and very slow) CPU run.
    return load_model(DEFAULT_MODEL, device="cuda")


def _as_loaded(
    model: torch.nn.Module | LoadedModel | None, tokenizer: object | None
) -> LoadedModel:
    if model is None:
        return _default_model()
    if isinstance(model, LoadedModel):
        return model
    return prepare_model(model, tokenizer)


def _provenance(loaded: LoadedModel | None, settings: ExtractionSettings) -> Provenance:
    """What this call's manifest would record; for the default model, known without loading
    it (SPEC 6: CUDA, float16) unless it is loaded already."""
    trunc, toks = settings.truncation_seq_length, settings.toks_per_batch
    if loaded is None and _default_model.cache_info().currsize:
        loaded = _default_model()
    if loaded is not None:
        return Provenance.of(loaded, trunc, toks)
    dtype, device = "float16", "cuda"
    return Provenance(DEFAULT_MODEL, None, None, dtype, device, DEFAULT_HIDDEN_SIZE, trunc, toks)


def _finished_output(
    job: FileJob, loaded: LoadedModel | None, settings: ExtractionSettings
) -> tuple[list[str], list[torch.Tensor]] | None:
    """The contents of `job.output` when the CLI would keep it (valid and current, or stale
    without `redo_stale`); None when it must be computed."""
    if settings.overwrite or not job.output.exists() or not job.fasta.is_file():
        return None
    provenance = _provenance(loaded, settings)
    existing = examine_output(job, provenance, sha256_of(job.fasta), redo_stale=settings.redo_stale)
    if existing.verdict == BUILD:
        if existing.reason:
            log.warning("existing output %s will be rebuilt: %s", job.output, existing.reason)
        return None
    if existing.verdict == STALE:
        log.warning("%s is %s: kept; redo_stale=True rebuilds it", job.output, existing.reason)
    else:
        log.info("%s: valid output exists, not recomputed", job.output)
    return load_embeddings(job.output)


def extract_fast_esm(
    fasta_file: str | Path,
    out_file: str | Path | None = None,
    model: torch.nn.Module | LoadedModel | None = None,
    tokenizer: object | None = None,
    truncation_seq_length: int = 1024,
    toks_per_batch: int = 2048,
    *,
    failure_log: str | Path | None = None,
    overwrite: bool = False,
    redo_stale: bool = False,
) -> tuple[list[str], list[torch.Tensor]]:
    """Embed one FASTA file; drop-in for VirNucPro's `units.extract_fast_esm`.

    Returns `(proteins, data)`: record IDs in FASTA order and float32 tensors of shape
    `(hidden_size,)`. With `out_file`, also writes `{'proteins', 'data'}` there atomically,
    with its manifest `<out_file>.json`, unless no record could be embedded. An `out_file`
    that already exists, loads and validates is returned as it is, without running (or
    loading) the model, as the CLI skips it; a stale one (another input, model, hidden size
    or setting) is reported and returned too unless `redo_stale`; an invalid or unfinished
    one is rebuilt; `overwrite` recomputes.
    `model`/`tokenizer` are a preloaded Hugging Face model (SDPA) and its tokenizer, or a
    `LoadedModel`; without them FastESM2_650 is loaded once per process. Bad records are
    skipped and appended to `failure_log` (default `./extraction_failures.log`); a file that
    cannot be read raises `FastaError`.
    """
    log_path = Path(failure_log) if failure_log is not None else Path.cwd() / FAILURE_LOG_NAME
    outputs = [out_file, manifest_path(out_file)] if out_file is not None else []
    check_failure_log(log_path)
    refuse_writing_over_inputs([fasta_file], [log_path, *outputs], "give another out_file")
    loaded = None if model is None else _as_loaded(model, tokenizer)
    started = utc_now()
    settings = ExtractionSettings(toks_per_batch, truncation_seq_length, overwrite, redo_stale)
    job = FileJob(Path(fasta_file), Path(out_file) if out_file is not None else Path(""))
    if out_file is not None:
        finished = _finished_output(job, loaded, settings)
        if finished is not None:
            return finished
    loaded = loaded or _default_model()
    prepared = prepare_file(job, loaded, settings)
    warn_about_records(prepared, settings)
    proteins, data, failures = assemble_output(compute_file(prepared, loaded), loaded.hidden_size)
    if out_file is not None and not proteins:
        log.error("%s: no record could be embedded: %s not written", fasta_file, out_file)
    elif out_file is not None:
        provenance = Provenance.of(loaded, truncation_seq_length, toks_per_batch)
        manifest = build_manifest(
            provenance,
            job.fasta,
            prepared.contents.sha256,
            prepared.contents.n_read,
            len(proteins),
            failures,
            started,
        )
        save_output_and_manifest(out_file, proteins, data, manifest)
    if failures:
        FailureLog(log_path).record_many(fasta_file, failures)
        log.warning("%s: %d records failed (see %s)", fasta_file, len(failures), log_path)
    return proteins, data


def extract_files(
    inputs: Sequence[str | Path],
    output_dir: str | Path | None = None,
    *,
    model: str | torch.nn.Module | LoadedModel = DEFAULT_MODEL,
    tokenizer: object | None = None,
    revision: str | None = None,
    device: str = "cuda",
    devices: Sequence[str] | None = None,
    shard: Shard | None = None,
    dtype: str | None = None,
    toks_per_batch: int = 2048,
    truncation_seq_length: int = 1024,
    overwrite: bool = False,
    redo_stale: bool = False,
    accept_invalid: bool = False,
    failure_log: str | Path | None = None,
    show_progress: bool = True,
) -> RunSummary:
    """Embed many FASTA files (or folders of them) with the model loaded once per device.

    Outputs go beside each input, or under `output_dir` keeping folder layout. Finished
    outputs are skipped unless `overwrite`; outputs whose manifest shows another input, model
    or setting are reported as stale and kept, or rebuilt with `redo_stale`; with
    `accept_invalid`, records that failed for an input reason leave `summary.ok` True. Reading and
    writing overlap with compute. With several `devices` (the model given by name), one
    worker process per device takes files as it frees up; with a `shard`, only that share
    of the files is done, and a torchrun shard (`shard_from_environment()`) puts the default
    device "cuda" on the rank's own GPU, `cuda:LOCAL_RANK`.
    """
    if devices is not None:
        devices = check_devices(list(devices))
    jobs = plan_jobs(list(inputs), output_dir)
    default_log_dir = Path(output_dir) if output_dir is not None else Path.cwd()
    log_path = Path(failure_log) if failure_log is not None else default_log_dir / FAILURE_LOG_NAME
    check_failure_log(log_path)
    refuse_writing_over_inputs(
        [job.fasta for job in jobs],
        [log_path, *(path for job in jobs for path in (job.output, manifest_path(job.output)))],
        "choose another -o OUTDIR or --failure-log",
    )
    if shard is not None:
        jobs = shard_jobs(jobs, shard)
        log.info(
            "shard %d/%d (%s): %d files", shard.index + 1, shard.count, shard.source, len(jobs)
        )
    check_writable(jobs)
    settings = ExtractionSettings(
        toks_per_batch, truncation_seq_length, overwrite, redo_stale, accept_invalid
    )
    if devices is not None and len(devices) > 1:
        if not isinstance(model, str):
            raise ValueError("several devices need the model by name: each worker loads its own")
        cpu_workers = sum(torch.device(d).type == "cpu" for d in devices)
        threads = max(1, torch.get_num_threads() // cpu_workers) if cpu_workers else None
        spec = WorkerSpec(model, revision, dtype, settings, log_path, threads)
        log.info("extracting %d files with %s on %s", len(jobs), model, ", ".join(devices))
        summary = run_on_devices(jobs, list(devices), spec, show_progress)
    else:
        device = devices[0] if devices else device_for_shard(device, shard)
        if isinstance(model, str):
            loaded = load_model(model, revision=revision, device=device, dtype=dtype)
        else:
            loaded = _as_loaded(model, tokenizer)
        log.info(
            "extracting %d files with %s on %s (%s, hidden size %d)",
            len(jobs),
            loaded.model_id,
            loaded.device,
            str(loaded.dtype).removeprefix("torch."),
            loaded.hidden_size,
        )
        summary = Extractor(loaded, settings, FailureLog(log_path), show_progress).run(jobs)
    log.info(
        "done in %.1f s: %d files written, %d skipped, %d failed; %d records embedded, %d failed, "
        "%d truncated",
        summary.seconds,
        summary.count(WRITTEN),
        summary.count(SKIPPED),
        summary.count(FAILED),
        summary.records_embedded,
        summary.records_failed,
        summary.records_truncated,
    )
    return summary
