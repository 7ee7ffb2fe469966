"""What a run reports: the outcome of each file (`Status`), the job it was given
(`FileJob`), its `FileResult`, and the run's totals (`RunSummary`) with their JSON form
(`--summary-json`), which workflow engines read instead of parsing logs. A leaf: it imports
nothing of the package."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


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
class FileJob:
    """One FASTA file and the `_ESM.pt` it becomes (None: embedded in memory only)."""

    fasta: Path
    output: Path | None


@dataclass(frozen=True)
class TruncatedRecord:
    """A record longer than the truncation length: its ID and its length in residues (its
    embedding is of the first `truncation_seq_length` of them)."""

    id: str
    length: int


@dataclass(frozen=True, kw_only=True)
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
    rebuilt_because: str = ""  # WRITTEN over an existing output: why it was replaced
    failed_kinds: tuple[str, ...] = ()  # the failure kind of each of the n_failed records
    truncated: tuple[TruncatedRecord, ...] = ()  # WRITTEN: the n_truncated records, named


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


# The `--summary-json` schema's version (README, "The summary JSON"). 2: every exit writes
# every key (`error` and `plan` added); `plan` counts `files` by action as a run does by status.
SUMMARY_FORMAT = 2


def _file_entry(result) -> dict:
    entry = {
        "input": str(result.job.fasta),
        "output": str(result.job.output),
        "status": str(result.status),
        "records": {
            "read": result.n_read,
            "embedded": result.n_embedded,
            "failed": result.n_failed,
            "invalid": result.n_invalid,
            "truncated": result.n_truncated,
        },
    }
    if result.message:
        entry["message"] = result.message
    if result.rebuilt_because:
        entry["rebuilt_because"] = result.rebuilt_because
    if result.truncated:
        entry["truncated_records"] = [{"id": t.id, "length": t.length} for t in result.truncated]
    return entry


def summary_as_dict(summary: RunSummary, command: str = "extract") -> dict:
    """Every key of the schema, for a finished run; an error, a stop or a plan replaces the
    values it knows (`error`, `exit_status`, `ok`, `files`, `plan`), never the key set."""
    results = summary.results
    by_status: dict[str, list[str]] = {}
    for result in results:
        by_status.setdefault(str(result.status), []).append(str(result.job.fasta))
    return {
        "format": SUMMARY_FORMAT,
        "command": command,
        "ok": summary.ok,
        "exit_status": summary.exit_status,
        "error": None,  # why the command ended early (usage error, signal, ...)
        "seconds": round(summary.seconds, 3),
        "model_loaded": summary.model_loaded,
        "stopped": summary.stopped,
        "failure_log": str(summary.failure_log) if summary.failure_log else None,
        "failure_log_problem": summary.failure_log_problem or None,
        "files": {status: len(paths) for status, paths in by_status.items()},
        "records": {
            "embedded": summary.records_embedded,
            "failed": summary.records_failed,
            "invalid": summary.records_invalid,
            "truncated": summary.records_truncated,
            "failed_by_kind": dict(sorted(summary.failed_kinds.items())),
        },
        "stale": [
            {"output": str(r.job.output), "reason": r.message}
            for r in results
            if str(r.status) == "stale"
        ],
        "rebuilt": [
            {"output": str(r.job.output), "reason": r.rebuilt_because}
            for r in results
            if r.rebuilt_because
        ],
        "file_results": [_file_entry(result) for result in results],
        "plan": None,  # `plan`: the model, the disk needed and the verdict of each file
    }
