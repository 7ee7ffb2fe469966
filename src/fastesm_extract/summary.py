"""What a run did: one status per file (`Status`), per-file results and the run's totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .jobs import FileJob


class Status(str, Enum):
    """The outcome of one file (or one merged pair); equal to its text: `"written"`, ..."""

    WRITTEN = "written"
    SKIPPED = "skipped"  # a finished output was kept
    STALE = "stale"  # an output of another input, model or setting was kept and reported
    LOCKED = "locked"  # being computed by another run: skipped by this one
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


WRITTEN, SKIPPED, STALE, LOCKED, FAILED = Status  # the short names the modules use


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file."""

    job: FileJob
    status: Status
    n_read: int = 0
    n_embedded: int = 0
    n_failed: int = 0  # records without an embedding in the output on disk
    n_truncated: int = 0
    message: str = ""
    n_invalid: int = 0  # of n_failed: failed for an input reason (reported on every rerun)


@dataclass
class RunSummary:
    """Totals of a run, describing the outputs on disk after it; see `ok`."""

    results: list[FileResult] = field(default_factory=list)
    failure_log: Path | None = None
    seconds: float = 0.0
    failure_log_problem: str = ""  # why the failure log could not be written, if it could not
    accept_invalid: bool = False
    stopped: str | None = None  # why the run ended before every file was done

    def count(self, status: Status | str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def records_embedded(self) -> int:
        return sum(result.n_embedded for result in self.results)

    @property
    def records_failed(self) -> int:
        return sum(result.n_failed for result in self.results)

    @property
    def records_truncated(self) -> int:
        return sum(result.n_truncated for result in self.results)

    @property
    def records_invalid(self) -> int:
        return sum(result.n_invalid for result in self.results)

    @property
    def ok(self) -> bool:
        """False when a file failed or is still being computed by another run, the run was
        stopped, or an output lacks records (input-invalid ones count with `accept_invalid`
        unset)."""
        accepted = self.records_invalid if self.accept_invalid else 0
        return (
            self.count(FAILED) == 0
            and self.count(LOCKED) == 0
            and self.stopped is None
            and self.records_failed - accepted == 0
        )
