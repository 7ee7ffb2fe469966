"""One worker process per device on a node, files handed out as workers free up.

Files are the unit of work, and batches never mix files, so an output is bitwise the same
whichever worker computed it. Shards across nodes are in `shards.py`; a worker's own side
is in `worker.py`, who gets which file in `dispatch.py`.

Each worker has its own pipes to this process and shares no lock with the others: one
shared task queue let a worker killed inside `get()` keep its read lock, and every other
worker waited on it forever.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import torch

from fastesm_extract.disk.failures import FailureKind, FailureLog
from fastesm_extract.disk.verdict import finished_before_death
from fastesm_extract.errors import ModelLoadError
from fastesm_extract.extract.progress import RunProgress
from fastesm_extract.extract.publish import file_failed, not_processed, written_before_death
from fastesm_extract.results import FileJob, FileResult, RunSummary
from fastesm_extract.running.config import RunConfig
from fastesm_extract.running.dispatch import Answer, Dispatcher
from fastesm_extract.running.script_guard import (
    called_from_unguarded_script,
    script_not_imported_by_workers,
)
from fastesm_extract.running.worker import WorkerMessage, worker_main

log = logging.getLogger("fastesm_extract")


@dataclass
class _Worker:
    """This process's view of one worker process and its two pipes."""

    process: BaseProcess
    tasks: connection.Connection  # to the worker: a FileJob, or None when there are no more
    events: connection.Connection | None  # from the worker; None once it has closed

    def waitables(self) -> list:
        return [self.process.sentinel, *([self.events] if self.events else [])]

    def messages(self) -> Iterator[tuple[str, object]]:
        """The messages that have arrived, up to the end of the pipe."""
        while self.events is not None and self.events.poll():
            try:
                yield self.events.recv()
            except (EOFError, OSError):  # the worker exited (maybe killed mid-message)
                self.events = None

    def hand(self, job: FileJob | None) -> None:
        try:
            self.tasks.send(job)
        except OSError:  # dead already: its death gives the job to another worker
            pass


def _start_worker(context, device: str, config: RunConfig, threads: int | None) -> _Worker:
    task_out, task_in = context.Pipe(duplex=False)
    event_out, event_in = context.Pipe(duplex=False)
    process = context.Process(
        target=worker_main, args=(device, config, threads, task_out, event_in), daemon=True
    )
    process.start()
    task_out.close()  # the worker's ends, closed here: its death then reads as end of pipe
    event_in.close()
    return _Worker(process, task_in, event_out)


class _Run:
    """This process's side of a run: answers requests, collects results, notices deaths."""

    def __init__(self, workers: list[_Worker], jobs: list[FileJob], config: RunConfig) -> None:
        self.workers, self.config = workers, config
        self.dispatcher = Dispatcher(sorted(jobs, key=_input_size, reverse=True), len(workers))
        self.summary = RunSummary(
            failure_log=config.failure_log, accept_invalid=config.settings.accept_invalid
        )
        self.progress = RunProgress(len(jobs), enabled=config.show_progress)
        self.live = set(range(len(workers)))
        self.fatal: list[str] = []

    def until_every_worker_left(self) -> None:
        while self.live:
            connection.wait([w for i in self.live for w in self.workers[i].waitables()])
            for i in sorted(self.live):
                dead = not self.workers[i].process.is_alive()  # before reading: all arrived
                for kind, payload in self.workers[i].messages():
                    self._handle(i, kind, payload)
                if dead and i in self.live:
                    exitcode = self.workers[i].process.exitcode
                    lost = {job.output: job for job in self._leave(i)}
                    self.summary.results += _lost_files(lost, exitcode, self.config.failure_log)

    def _handle(self, i: int, kind: str, payload) -> None:
        summary = self.summary
        if kind == WorkerMessage.WANT:
            self._answer(self.dispatcher.ask(i))
        elif kind == WorkerMessage.TOOK:
            self._answer(self.dispatcher.took(i, payload))
        elif kind == WorkerMessage.SEQUENCES:
            self.progress.sequences(payload)
        elif kind == WorkerMessage.STARTED:
            self.progress.file_started(payload)
        elif kind == WorkerMessage.DONE:
            self.dispatcher.finished(i, payload.job)
            summary.results.append(payload)
            self.progress.file_done(payload)
        elif kind == WorkerMessage.READY:
            log.info("worker %d ready on %s", i, payload)
        elif kind == WorkerMessage.FATAL:
            self.fatal.append(payload)
            self._leave(i)
        elif kind == WorkerMessage.STOPPED:
            log.error("worker %d stopped: %s", i, payload)
            summary.stopped = "; ".join(filter(None, [summary.stopped, payload]))
        elif kind == WorkerMessage.EXIT:
            # Files a stopped worker had taken but not begun (read ahead): not done.
            summary.results += [
                not_processed(job, "not begun: its worker's device failed; rerun")
                for job in self._leave(i)
            ]
            summary.failure_log_problem = payload or summary.failure_log_problem

    def _leave(self, i: int) -> list[FileJob]:
        """Worker `i` is gone: the files it took and did not finish; the others go on."""
        unfinished, answers = self.dispatcher.leave(i)
        self._answer(answers)
        self.live.discard(i)
        return unfinished

    def _answer(self, answers: list[Answer]) -> None:
        for worker, job in answers:
            self.workers[worker].hand(job)


def run_on_devices(jobs: list[FileJob], config: RunConfig) -> RunSummary:
    """Run `jobs` with one spawned worker per device of `config` (its model given by name);
    files are handed out largest first, one at a time as each worker asks.

    A worker that dies loses only the files it was working on: they are reported as failed
    (and redone by the next run, since they have no valid output); the others go on.
    """
    started = time.perf_counter()
    devices = config.devices
    cpu_workers = sum(torch.device(device).type == "cpu" for device in devices)
    # CPU workers share the cores instead of each starting one thread per core.
    threads = max(1, torch.get_num_threads() // cpu_workers) if cpu_workers else None
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used after fork
    # A script calling this without `if __name__ == "__main__":` must not be run again by
    # each worker's import of it (script_guard.py).
    importing = script_not_imported_by_workers if called_from_unguarded_script() else nullcontext
    with importing():
        workers = [_start_worker(context, device, config, threads) for device in devices]
    run = _Run(workers, jobs, config)
    try:
        run.until_every_worker_left()
    except KeyboardInterrupt as interrupt:
        # Ctrl-C reaches the workers too; SIGTERM may reach only this process: pass it on
        # and give them time to finish their writes and remove their locks.
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in workers:
            worker.process.join(timeout=60)
            # The files it finished meanwhile: what finished rides on the exception.
            done = [payload for kind, payload in worker.messages() if kind == WorkerMessage.DONE]
            run.summary.results += done
        interrupt.summary = run.summary
        raise
    finally:
        run.progress.close()
        for worker in workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
    summary, fatal = run.summary, run.fatal
    if fatal and len(fatal) == len(workers):
        raise ModelLoadError("no worker could load the model: " + "; ".join(fatal))
    for message in fatal:
        log.error("worker failed to start: %s", message)
    done = {result.job.output for result in summary.results}
    for job in jobs:
        if job.output not in done:  # left when every worker had stopped
            summary.results.append(not_processed(job, "not processed: no worker left; rerun"))
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
        written_before_death(job)
        if finished_before_death(job)
        else file_failed(job, FailureKind.WORKER_DIED, message, log_file)
        for job in jobs.values()
    ]
