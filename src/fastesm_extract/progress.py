"""Progress bar (files, sequences, rate) and run logging of SPEC section 5."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from tqdm.auto import tqdm

log = logging.getLogger("fastesm_extract")
LOG_EVERY_FILES = 100


class ProgressSink(Protocol):
    """Where the pipeline reports progress: a local bar, or a queue to the parent process."""

    def sequences(self, count: int) -> None: ...

    def file_done(self, result: object) -> None: ...

    def close(self) -> None: ...


class RunProgress:
    """One tqdm bar over files with sequences done and sequences/s; log lines every 100 files."""

    def __init__(self, total_files: int, enabled: bool = True) -> None:
        self.total_files = total_files
        self.files_done = 0
        self.sequences_done = 0
        self.started = time.perf_counter()
        self._bar = tqdm(
            total=total_files,
            unit="file",
            desc="fastesm-extract",
            disable=not enabled,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def sequences(self, count: int) -> None:
        self.sequences_done += count
        rate = self.sequences_done / max(time.perf_counter() - self.started, 1e-9)
        self._bar.set_postfix_str(f"{self.sequences_done} seq, {rate:.0f} seq/s", refresh=False)
        self._bar.update(0)  # redraws at most every `mininterval`

    def file_done(self, result: object = None) -> None:
        self.files_done += 1
        self._bar.update(1)
        if self.files_done % LOG_EVERY_FILES == 0:
            log.info(
                "%d/%d files done, %d sequences embedded",
                self.files_done,
                self.total_files,
                self.sequences_done,
            )

    def close(self) -> None:
        self._bar.close()
