"""Progress of a run: a tqdm bar on a terminal; without one (a Slurm batch
job's log file) a log line at a steady interval instead; a log line every 100 files always."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Protocol

from tqdm.auto import tqdm

log = logging.getLogger("fastesm_extract")
LOG_EVERY_FILES = 100
LOG_INTERVAL_VARIABLE = "FASTESM_EXTRACT_LOG_INTERVAL_S"
DEFAULT_LOG_INTERVAL_S = 60.0


class ProgressSink(Protocol):
    """Where the pipeline reports progress: a local bar, or a queue to the parent process."""

    def sequences(self, count: int) -> None: ...

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


class RunProgress:
    """Files and sequences done: a bar (files, sequences, sequences/s) when `enabled` on a
    terminal, else, when `enabled`, a log line every `log_interval_s()`; a log line every 100
    files either way. Counts are safe to update from the writer thread."""

    def __init__(self, total_files: int, enabled: bool = True) -> None:
        self.total_files = total_files
        self.files_done = 0
        self.sequences_done = 0
        self.started = time.perf_counter()
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
                args=(log_interval_s(),),
                name="fastesm-progress",
                daemon=True,
            )
            self._ticker.start()

    def _rate(self) -> float:
        return self.sequences_done / max(time.perf_counter() - self.started, 1e-9)

    def sequences(self, count: int) -> None:
        with self._lock:
            self.sequences_done += count
            self._bar.set_postfix_str(
                f"{self.sequences_done} seq, {self._rate():.0f} seq/s", refresh=False
            )
            self._bar.update(0)  # redraws at most every `mininterval`

    def file_done(self, result: object = None) -> None:
        with self._lock:
            self.files_done += 1
            self._bar.update(1)
            files_done = self.files_done
        if files_done % LOG_EVERY_FILES == 0:
            log.info(
                "%d/%d files done, %d sequences embedded",
                files_done,
                self.total_files,
                self.sequences_done,
            )

    def status_line(self) -> str:
        """`progress: 12/40 files, 120000 records embedded, 2950 records/s, ETA 0:03:10`."""
        elapsed = time.perf_counter() - self.started
        done, total = self.files_done, self.total_files
        eta = _duration(elapsed / done * (total - done)) if done else "unknown"
        return (
            f"progress: {done}/{total} files, {self.sequences_done} records embedded, "
            f"{self._rate():.0f} records/s, elapsed {_duration(elapsed)}, ETA {eta}"
        )

    def _log_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            log.info("%s", self.status_line())

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._bar.close()
