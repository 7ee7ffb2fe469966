"""What a run did: one status per file (`Status`), per-file results and the run's totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .handoff import (  # noqa: F401 - re-exported: the statuses and results runs report
    FAILED,
    LOCKED,
    SKIPPED,
    STALE,
    WRITTEN,
    FileJob,
    FileResult,
    Status,
)
from .summary_json import summary_as_dict


@dataclass
class RunSummary:
    """Totals of a run, describing the outputs on disk after it; see `ok`."""

    results: list[FileResult] = field(default_factory=list)
    failure_log: Path | None = None
    seconds: float = 0.0
    failure_log_problem: str = ""  # why the failure log could not be written, if it could not
    accept_invalid: bool = False
    accept_stale: bool = False  # stale outputs (another model or truncation) do not fail the run
    stopped: str | None = None  # why the run ended before every file was done
    model_loaded: bool = False  # False when nothing had to be computed

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
    def failed_kinds(self) -> Counter:
        """Failed records by failure kind (`out_of_memory`, `invalid_character`, ...)."""
        return Counter(kind for result in self.results for kind in result.failed_kinds)

    @property
    def records_invalid(self) -> int:
        return sum(result.n_invalid for result in self.results)

    @property
    def ok(self) -> bool:
        """True only when every output is current and complete: False when a file failed or
        is still being computed by another run, the run was stopped, an output is stale
        (unless `accept_stale`) or lacks records (input-invalid ones count with
        `accept_invalid` unset)."""
        accepted = self.records_invalid if self.accept_invalid else 0
        return (
            self.count(FAILED) == 0
            and self.count(LOCKED) == 0
            and (self.accept_stale or self.count(STALE) == 0)
            and self.stopped is None
            and self.records_failed - accepted == 0
        )

    @property
    def exit_status(self) -> int:
        """0 when `ok`, else 1 (the CLI's exit status for a finished run)."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        """The summary as JSON-ready data (`--summary-json`): what workflow engines read."""
        return summary_as_dict(self)
