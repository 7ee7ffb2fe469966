"""The one runner: jobs + a `RunConfig` -> outputs and a `RunSummary`.

First every output is examined without the model (`plan`): current and stale outputs are
kept and reported, so a run with nothing to build never loads the model. The rest run on one
device (an `Extractor`, the model loaded here) or on several (`parallel.run_on_devices`, one
worker process per device, each loading its own model).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.results import (
    FAILED,
    SKIPPED,
    STALE,
    WRITTEN,
    FileJob,
    FileResult,
    RunSummary,
)
from fastesm_extract.running.config import ModelSpec, RunConfig
from fastesm_extract.running.examine import kept_without_model, model_identity
from fastesm_extract.running.parallel import run_on_devices
from fastesm_extract.running.rates import device_label, rate_model, record_rate
from fastesm_extract.running.shards import shard_jobs
from fastesm_extract.running.signals import describe
from fastesm_extract.running.sources import check_writable

log = logging.getLogger("fastesm_extract")

Jobs = Sequence[FileJob] | Callable[[], Sequence[FileJob]]


def ready_jobs(jobs: Sequence[FileJob], config: RunConfig) -> list[FileJob]:
    """This process's share of `jobs`, with every output folder checked writable."""
    jobs = list(jobs)
    if (shard := config.shard) is not None:
        jobs = shard_jobs(jobs, shard)
        log.info(
            "shard %d/%d (%s): %d files", shard.index + 1, shard.count, shard.source, len(jobs)
        )
    check_writable(jobs)
    return jobs


def _empty_summary(config: RunConfig) -> RunSummary:
    settings = config.settings
    return RunSummary(
        failure_log=config.failure_log,
        accept_invalid=settings.accept_invalid,
        accept_stale=settings.accept_stale,
    )


def _compute(jobs: list[FileJob], config: RunConfig) -> RunSummary:
    """Run the jobs that need the model: loaded here, or once per device in workers."""
    if len(config.devices) > 1:
        log.info(
            "extracting %d files with %s on %s",
            len(jobs),
            config.model.model,
            ", ".join(config.devices),
        )
        return run_on_devices(jobs, config)
    loaded = config.model.load(config.devices[0])
    log.info(
        "extracting %d files with %s on %s (%s, hidden size %d)",
        len(jobs),
        loaded.model_id,
        loaded.device,
        str(loaded.dtype).removeprefix("torch."),
        loaded.hidden_size,
    )
    extractor = Extractor(
        loaded, config.settings, FailureLog(config.failure_log), config.show_progress
    )
    return extractor.run(jobs)


def _compute_or_stop(
    jobs: list[FileJob], config: RunConfig, kept: list[FileResult], total: int
) -> RunSummary:
    """`_compute`; on Ctrl-C or SIGTERM the exception carries, as `summary`, what finished
    (the `kept` outputs and the files done), `stopped` saying "N of M files done"."""
    try:
        return _compute(jobs, config)
    except KeyboardInterrupt as interrupt:
        partial = getattr(interrupt, "summary", None) or _empty_summary(config)
        partial.results = [*kept, *partial.results]
        partial.accept_stale = config.settings.accept_stale
        done = f"{len(partial.results)} of {total} files done"
        partial.stopped = f"{describe(interrupt)}: {done}"
        interrupt.summary = partial
        raise


def run(jobs: Jobs, config: RunConfig) -> RunSummary:
    """Run `jobs` (or this shard's share of them) as `config` says; never raises for a bad
    file or record (see the summary).

    `jobs` may be a function that makes them (e.g. splits a large FASTA): it is called once
    the model is loaded, so a model problem is reported before that work. A list is checked
    (outputs writable) and examined before the model loads: if nothing needs computing, the
    model is not loaded at all.
    """
    started = time.perf_counter()
    if callable(jobs):  # made after the model is loaded (split parts): nothing to examine yet
        if len(config.devices) == 1:
            loaded = config.model.load(config.devices[0])
            config = dataclasses.replace(config, model=ModelSpec(loaded))
        ready = ready_jobs(jobs(), config)
        summary = _compute_or_stop(ready, config, [], len(ready))
        summary.model_loaded = True
    else:
        ready = ready_jobs(jobs, config)
        to_build, kept = kept_without_model(ready, config)
        if to_build:
            summary = _compute_or_stop(to_build, config, list(kept.values()), len(ready))
            summary.model_loaded = True
        else:
            summary = _empty_summary(config)
            if ready:
                log.info("nothing to compute: every output is current or kept; model not loaded")
        built = {result.job: result for result in summary.results}
        ordered = [kept.get(job) or built.pop(job, None) for job in ready]
        summary.results = [r for r in ordered if r is not None] + list(built.values())
    summary.accept_stale = config.settings.accept_stale
    summary.seconds = time.perf_counter() - started
    if summary.model_loaded and summary.records_embedded and config.model.by_name:
        label = device_label(config.devices)
        model = rate_model(model_identity(config.model, config.settings), config.model.model)
        record_rate(model, label, summary.records_embedded, summary.seconds)
    log.info(
        "done in %.1f s: %d files written, %d skipped, %d stale, %d failed; %d records "
        "embedded, %d failed, %d truncated",
        summary.seconds,
        summary.count(WRITTEN),
        summary.count(SKIPPED),
        summary.count(STALE),
        summary.count(FAILED),
        summary.records_embedded,
        summary.records_failed,
        summary.records_truncated,
    )
    return summary
