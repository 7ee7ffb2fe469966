"""One `--devices` worker process: load the model once, then embed the files the parent hands
it, one request at a time, reporting each step back (`parallel.py` is the parent's side).

Its two pipes are its own (tasks in, events out): it shares no lock with other workers, so
however it dies, it cannot leave one behind that they would wait on forever.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from enum import Enum
from multiprocessing.connection import Connection

import torch

from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.errors import ModelLoadError
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.results import FileJob, FileResult
from fastesm_extract.running.config import RunConfig
from fastesm_extract.running.signals import STOP_SIGNALS, ignore_stop_signals, raise_on_stop_signal


class _Events:
    """The worker's end of its events pipe, shared by its threads (reader and device)."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe, self._lock = pipe, threading.Lock()  # a lock of this process only

    def send(self, kind: WorkerMessage, payload: object = None) -> None:
        with self._lock:
            self.pipe.send((kind, payload))


class _EventProgress:
    """Progress sink of a worker: forwards sequence counts and file results to the parent."""

    def __init__(self, events: _Events) -> None:
        self.events = events
        self._unsent, self._last = 0, time.monotonic()
        self._lock = threading.Lock()  # file_done comes from the writer thread

    def sequences(self, count: int) -> None:
        with self._lock:
            self._unsent += count
            due = time.monotonic() - self._last > 0.25  # batch the messages, not one per batch
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            unsent, self._unsent, self._last = self._unsent, 0, time.monotonic()
        if unsent:
            self.events.send(WorkerMessage.SEQUENCES, unsent)

    def file_started(self, records: int) -> None:
        self.events.send(WorkerMessage.STARTED, records)

    def file_done(self, result: FileResult) -> None:
        self.flush()
        self.events.send(WorkerMessage.DONE, result)

    def close(self) -> None:
        self.flush()


def _jobs_from(tasks: Connection, events: _Events) -> Iterator[FileJob]:
    """Ask the parent for one job at a time until it answers None; confirm each one taken."""
    while True:
        events.send(WorkerMessage.WANT)
        try:
            job = tasks.recv()
        except EOFError:  # the parent is gone: nobody left to report to
            return
        if job is None:
            return
        events.send(WorkerMessage.TOOK, job)
        yield job


def worker_main(
    device: str, config: RunConfig, cpu_threads: int | None, tasks: Connection, events: Connection
) -> None:
    """A worker process: load the model once on `device`, then take files until none are left.

    SIGTERM (from the parent, or from Slurm to every process), SIGHUP and Ctrl-C end it
    quietly after the writes in progress: the parent prints the one message. Only the
    first counts: a second one (the parent passes SIGTERM on after Ctrl-C) must not cut
    short the cleanup the first one started.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_on_stop_signal)
    try:
        _work(device, config, cpu_threads, tasks, _Events(events))
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: Extractor.run has cleaned up
        ignore_stop_signals()  # nothing is left to do but exit


def _work(
    device: str, config: RunConfig, cpu_threads: int | None, tasks: Connection, events: _Events
) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s [{device}] %(message)s")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the parent shows the one progress bar
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    try:
        loaded = config.model.load(device)
    except ModelLoadError as error:
        events.send(WorkerMessage.FATAL, f"{device}: {error}")
        return
    events.send(WorkerMessage.READY, device)
    progress = _EventProgress(events)
    extractor = Extractor(loaded, config.settings, FailureLog(config.failure_log), False)
    summary = extractor.run(_jobs_from(tasks, events), progress)
    progress.close()
    if summary.stopped:  # this device failed: its worker stops, the others go on
        events.send(WorkerMessage.STOPPED, f"{device}: {summary.stopped}")
    events.send(WorkerMessage.EXIT, extractor.failure_log.problem)


class WorkerMessage(str, Enum):
    """The kind of an event a worker sends (`worker.py`) and the parent handles
    (`parallel.py`), with the payload each carries."""

    WANT = "want"  # no payload: give me a file
    TOOK = "took"  # the FileJob it received (confirms the hand-over)
    SEQUENCES = "sequences"  # how many more sequences it embedded
    STARTED = "started"  # the records of a file it began (0: kept, or failed before)
    DONE = "done"  # the FileResult of a file
    READY = "ready"  # its device: the model is loaded
    FATAL = "fatal"  # why it cannot start (model or device)
    STOPPED = "stopped"  # why it stopped early (its device failed)
    EXIT = "exit"  # its failure log's problem, if any: it is leaving

    def __str__(self) -> str:
        return self.value
