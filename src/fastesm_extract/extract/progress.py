"""Progress of a run: a tqdm bar on a terminal; without one (a Slurm batch
job's log file) a log line soon after the start, then at a steady interval, with an ETA from
records (not files); a line per finished file in a run of few files, else every 100 files."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from tqdm.auto import tqdm

log = logging.getLogger("fastesm_extract")
LOG_EVERY_FILES = 100
FEW_FILES = 20  # up to this many files, each finished file gets its own log line
FIRST_LINE_AFTER_S = 10.0  # a batch log shows the run working before the first interval
LOG_INTERVAL_VARIABLE = "FASTESM_EXTRACT_LOG_INTERVAL_S"
DEFAULT_LOG_INTERVAL_S = 60.0


class ProgressSink(Protocol):
    """Where the pipeline reports progress: a local bar, or a queue to the parent process."""

    def sequences(self, count: int) -> None: ...

    def file_started(self, records: int) -> None: ...

    def file_done(self, result: object) -> None: ...

    def close(self) -> None: ...


def log_interval_s() -> float:
    """Seconds between progress log lines: FASTESM_EXTRACT_LOG_INTERVAL_S, else 60."""
    text = os.environ.get(LOG_INTERVAL_VARIABLE, "")
    try:
        value = float(text) if text.strip() else DEFAULT_LOG_INTERVAL_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds: using 60", LOG_INTERVAL_VARIABLE, text)
        return DEFAULT_LOG_INTERVAL_S
    return value if value > 0 else DEFAULT_LOG_INTERVAL_S


def on_a_terminal() -> bool:
    """True where a bar can redraw itself: a terminal, or a notebook (tqdm's widget)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def tick_delays(interval: float) -> Iterator[float]:
    """Seconds before each progress line: the first within `FIRST_LINE_AFTER_S`, then
    every `interval`."""
    yield min(FIRST_LINE_AFTER_S, interval)
    while True:
        yield interval


class RunProgress:
    """Files and sequences done: a bar (files, sequences, sequences/s) when `enabled` on a
    terminal, else, when `enabled`, a log line soon after the start and then every
    `interval_s` (default `log_interval_s()`); either way a log line per finished file when
    the run has at most `FEW_FILES` files, else every 100 files. Counts are safe to update
    from the writer thread. `clock` gives the seconds (a test passes its own)."""

    def __init__(
        self,
        total_files: int,
        enabled: bool = True,
        *,
        clock: Callable[[], float] = time.perf_counter,
        interval_s: float | None = None,
    ) -> None:
        self.total_files = total_files
        self.files_done = 0
        self.sequences_done = 0
        self.clock = clock
        self.started = clock()
        # For the ETA: the files that reached the device and the records they hold.
        self.files_started = self.files_with_records = self.records_started = 0
        self._last_line = (self.started, 0)  # (time, sequences) at the last status line
        self._lock = threading.Lock()
        self._bar = tqdm(
            total=total_files,
            unit="file",
            desc="fastesm-extract",
            disable=not (enabled and on_a_terminal()),
            dynamic_ncols=True,
            mininterval=0.5,
        )
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if enabled and not on_a_terminal():
            self._ticker = threading.Thread(
                target=self._log_every,
                args=(interval_s or log_interval_s(),),
                name="fastesm-progress",
                daemon=True,
            )
            self._ticker.start()

    def _rate(self) -> float:
        return self.sequences_done / max(self.clock() - self.started, 1e-9)

    def sequences(self, count: int) -> None:
        with self._lock:
            self.sequences_done += count
            self._bar.set_postfix_str(
                f"{self.sequences_done} seq, {self._rate():.0f} seq/s", refresh=False
            )
            self._bar.update(0)  # redraws at most every `mininterval`

    def file_started(self, records: int) -> None:
        """A file reached the device with `records` to embed (0: kept, or failed before)."""
        with self._lock:
            self.files_started += 1
            self.files_with_records += records > 0
            self.records_started += records

    def file_done(self, result: object = None) -> None:
        with self._lock:
            self.files_done += 1
            self._bar.update(1)
            files_done = self.files_done
        if self.total_files <= FEW_FILES and result is not None:
            job, status = getattr(result, "job", None), getattr(result, "status", "")
            log.info(
                "file %d/%d done: %s %s, %d records embedded",
                files_done,
                self.total_files,
                getattr(job, "fasta", "?"),
                status,
                getattr(result, "n_embedded", 0),
            )
        elif files_done % LOG_EVERY_FILES == 0:
            log.info(
                "%d/%d files done, %d sequences embedded",
                files_done,
                self.total_files,
                self.sequences_done,
            )

    def records_left(self) -> float | None:
        """Records still to embed: those of the files started and not embedded yet, plus,
        for each file not started, the mean of the started files; None before any."""
        if not self.files_with_records:
            return None
        mean = self.records_started / self.files_with_records
        not_started = max(0, self.total_files - max(self.files_started, self.files_done))
        return max(0, self.records_started - self.sequences_done) + not_started * mean

    def status_line(self) -> str:
        """`progress: 12/40 files, 120000 records embedded, 2950 records/s, elapsed 0:00:41,
        ETA 0:03:10`: the ETA is the records left at the rate since the previous line."""
        now = self.clock()
        elapsed = now - self.started
        since, then = self._last_line
        self._last_line = (now, self.sequences_done)
        recent = self.sequences_done - then
        rate = recent / (now - since) if recent > 0 and now > since else self._rate()
        left = self.records_left()
        eta = _duration(left / rate) if left is not None and rate > 0 else "unknown"
        return (
            f"progress: {self.files_done}/{self.total_files} files, {self.sequences_done} "
            f"records embedded, {self._rate():.0f} records/s, elapsed {_duration(elapsed)}, "
            f"ETA {eta}"
        )

    def _log_every(self, interval: float) -> None:
        for delay in tick_delays(interval):
            if self._stop.wait(delay):
                return
            log.info("%s", self.status_line())

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._bar.close()
