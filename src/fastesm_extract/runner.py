"""The one runner: jobs + a `RunConfig` -> outputs and a `RunSummary`.

One device: the model is loaded here and an `Extractor` runs the jobs. Several devices:
one worker process per device (`parallel.run_on_devices`), each loading its own model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .config import RunConfig
from .failures import FailureLog
from .jobs import FileJob, check_writable
from .parallel import run_on_devices
from .pipeline import Extractor
from .shards import shard_jobs
from .summary import FAILED, SKIPPED, WRITTEN, RunSummary

log = logging.getLogger("fastesm_extract")

Jobs = Sequence[FileJob] | Callable[[], Sequence[FileJob]]


def _ready(jobs: Sequence[FileJob], config: RunConfig) -> list[FileJob]:
    """This process's share of `jobs`, with every output folder checked writable."""
    jobs = list(jobs)
    if (shard := config.shard) is not None:
        jobs = shard_jobs(jobs, shard)
        log.info(
            "shard %d/%d (%s): %d files", shard.index + 1, shard.count, shard.source, len(jobs)
        )
    check_writable(jobs)
    return jobs


def run(jobs: Jobs, config: RunConfig) -> RunSummary:
    """Run `jobs` (or this shard's share of them) as `config` says; never raises for a bad
    file or record (see the summary).

    `jobs` may be a function that makes them (e.g. splits a large FASTA): it is called once
    the model is loaded, so a model problem is reported before that work. A list is checked
    (outputs writable) before the model loads.
    """
    ready = None if callable(jobs) else _ready(jobs, config)
    if len(config.devices) > 1:
        ready = ready if ready is not None else _ready(jobs(), config)
        log.info(
            "extracting %d files with %s on %s",
            len(ready),
            config.model.model,
            ", ".join(config.devices),
        )
        summary = run_on_devices(ready, config)
    else:
        loaded = config.model.load(config.devices[0])
        ready = ready if ready is not None else _ready(jobs(), config)
        log.info(
            "extracting %d files with %s on %s (%s, hidden size %d)",
            len(ready),
            loaded.model_id,
            loaded.device,
            str(loaded.dtype).removeprefix("torch."),
            loaded.hidden_size,
        )
        extractor = Extractor(
            loaded, config.settings, FailureLog(config.failure_log), config.show_progress
        )
        summary = extractor.run(ready)
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
