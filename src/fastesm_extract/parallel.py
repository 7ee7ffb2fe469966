"""One worker process per device on a node, files handed out as workers free up.

Files are the unit of work, and batches never mix files, so an output is bitwise the same
whichever worker computed it. Shards across nodes are in `shards.py`.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from .config import RunConfig
from .failures import FailureLog
from .jobs import FileJob
from .model import ModelLoadError
from .pipeline import Extractor
from .progress import RunProgress
from .publish import file_failed
from .resume import finished_before_death
from .signals import Terminated
from .summary import FAILED, WRITTEN, FileResult, RunSummary

log = logging.getLogger("fastesm_extract")


class _QueueProgress:
    """Progress sink of a worker: forwards sequence counts and file results to the parent."""

    def __init__(self, events, worker: int) -> None:
        self.events, self.worker = events, worker
        self._unsent, self._last = 0, time.monotonic()

    def sequences(self, count: int) -> None:
        self._unsent += count
        if time.monotonic() - self._last > 0.25:  # batch the messages, not one per batch
            self.flush()

    def flush(self) -> None:
        if self._unsent:
            self.events.put(("sequences", self.worker, self._unsent))
        self._unsent, self._last = 0, time.monotonic()

    def file_done(self, result: FileResult) -> None:
        self.flush()
        self.events.put(("done", self.worker, result))

    def close(self) -> None:
        self.flush()


def _jobs_from(tasks, events, worker: int) -> Iterator[FileJob]:
    """Take jobs from the shared queue until the sentinel, telling the parent each one."""
    while (job := tasks.get()) is not None:
        events.put(("took", worker, job))
        yield job


def _stop_worker(signum: int, frame: object) -> None:
    # Once: a second signal (the parent passes SIGTERM on after Ctrl-C) must not cut short
    # the cleanup the first one started. (A no-op handler, not SIG_IGN: a signal already
    # pending would otherwise raise "ignored due to race condition".)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _ignore(signum: int, frame: object) -> None:
    pass


def _worker_main(
    worker: int, device: str, config: RunConfig, cpu_threads: int | None, tasks, events
) -> None:
    """A worker process: load the model once on `device`, then take files until none are left.

    SIGTERM (from the parent, or from Slurm to every process) and Ctrl-C end it quietly
    after the writes in progress: the parent prints the one message.
    """
    signal.signal(signal.SIGTERM, _stop_worker)
    signal.signal(signal.SIGINT, _stop_worker)
    try:
        _work(worker, device, config, cpu_threads, tasks, events)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Extractor.run has cleaned up
        events.cancel_join_thread()  # the parent may no longer read: do not wait on it


def _work(
    worker: int, device: str, config: RunConfig, cpu_threads: int | None, tasks, events
) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s [{device}] %(message)s")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the parent shows the one progress bar
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    try:
        loaded = config.model.load(device)
    except ModelLoadError as error:
        events.put(("fatal", worker, f"{device}: {error}"))
        return
    events.put(("ready", worker, device))
    progress = _QueueProgress(events, worker)
    extractor = Extractor(loaded, config.settings, FailureLog(config.failure_log), False)
    summary = extractor.run(_jobs_from(tasks, events, worker), progress)
    progress.close()
    if summary.stopped:  # this device failed: its worker stops, the others go on
        events.put(("stopped", worker, f"{device}: {summary.stopped}"))
    events.put(("exit", worker, extractor.failure_log.problem))


def run_on_devices(jobs: list[FileJob], config: RunConfig) -> RunSummary:
    """Run `jobs` with one spawned worker per device of `config` (its model given by name);
    files are handed out largest first.

    A worker that dies loses only the files it was working on: they are reported as failed
    (and redone by the next run, since they have no valid output); the others go on.
    """
    started = time.perf_counter()
    devices = config.devices
    cpu_workers = sum(torch.device(device).type == "cpu" for device in devices)
    # CPU workers share the cores instead of each starting one thread per core.
    threads = max(1, torch.get_num_threads() // cpu_workers) if cpu_workers else None
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used after fork
    tasks, events = context.Queue(), context.Queue()
    for job in sorted(jobs, key=_input_size, reverse=True):
        tasks.put(job)
    for _ in devices:
        tasks.put(None)
    workers = [
        context.Process(
            target=_worker_main, args=(i, device, config, threads, tasks, events), daemon=True
        )
        for i, device in enumerate(devices)
    ]
    for process in workers:
        process.start()
    summary = RunSummary(
        failure_log=config.failure_log, accept_invalid=config.settings.accept_invalid
    )
    progress = RunProgress(len(jobs), enabled=config.show_progress)
    in_flight: dict[int, dict[Path, FileJob]] = {i: {} for i in range(len(workers))}
    finished: set[int] = set()
    fatal: list[str] = []
    try:
        while len(finished) < len(workers):
            try:
                kind, worker, payload = events.get(timeout=0.5)
            except queue.Empty:
                for i, process in enumerate(workers):
                    if i not in finished and not process.is_alive() and events.empty():
                        finished.add(i)
                        summary.results += _lost_files(
                            in_flight[i], process.exitcode, config.failure_log
                        )
                continue
            if kind == "took":
                in_flight[worker][payload.output] = payload
            elif kind == "sequences":
                progress.sequences(payload)
            elif kind == "done":
                in_flight[worker].pop(payload.job.output, None)
                summary.results.append(payload)
                progress.file_done(payload)
            elif kind == "ready":
                log.info("worker %d ready on %s", worker, payload)
            elif kind == "fatal":
                fatal.append(payload)
                finished.add(worker)
            elif kind == "stopped":
                log.error("worker %d stopped: %s", worker, payload)
                summary.stopped = "; ".join(filter(None, [summary.stopped, payload]))
            elif kind == "exit":
                finished.add(worker)
                # Files a stopped worker had taken but not begun (read ahead): not done.
                summary.results += [
                    FileResult(job, FAILED, message="not begun: its worker's device failed; rerun")
                    for job in in_flight[worker].values()
                ]
                in_flight[worker].clear()
                summary.failure_log_problem = payload or summary.failure_log_problem
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers too; SIGTERM may reach only this process: pass it on
        # and give them time to finish their writes and remove their locks.
        tasks.cancel_join_thread()  # files nobody will take: do not wait to flush them
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=60)
        raise
    finally:
        progress.close()
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    if fatal and len(fatal) == len(workers):
        raise ModelLoadError("no worker could load the model: " + "; ".join(fatal))
    for message in fatal:
        log.error("worker failed to start: %s", message)
    done = {result.job.output for result in summary.results}
    for job in jobs:
        if job.output not in done:  # left in the queue when every worker had stopped
            summary.results.append(
                FileResult(job, FAILED, message="not processed: no worker left; rerun")
            )
    summary.seconds = time.perf_counter() - started
    return summary


def _input_size(job: FileJob) -> int:
    try:
        return job.fasta.stat().st_size
    except OSError:
        return 0


def _lost_files(
    jobs: dict[Path, FileJob], exitcode: int | None, failure_log: Path
) -> list[FileResult]:
    """Files a dead worker had taken: reported as failed, to be redone by the next run."""
    message = f"worker process died (exit code {exitcode}); rerun to redo this file"
    log_file = FailureLog(failure_log)
    return [
        FileResult(job, WRITTEN, message="written before its worker died")
        if finished_before_death(job)
        else file_failed(job, "worker_died", message, log_file)
        for job in jobs.values()
    ]
