"""A run's summary as JSON (`--summary-json PATH`, `RunSummary.to_dict()`): files by status,
records by failure kind, stale and rebuilt outputs with reasons, timings, exit status.

Workflow engines (Snakemake, Nextflow) read this instead of parsing logs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .store import atomic_write

if TYPE_CHECKING:
    from .summary import RunSummary

SUMMARY_FORMAT = 1


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
    return entry


def summary_as_dict(summary: RunSummary) -> dict:
    results = summary.results
    by_status: dict[str, list[str]] = {}
    for result in results:
        by_status.setdefault(str(result.status), []).append(str(result.job.fasta))
    return {
        "format": SUMMARY_FORMAT,
        "ok": summary.ok,
        "exit_status": summary.exit_status,
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
    }


def write_summary_json(path: str | Path, data: dict) -> None:
    """Write `data` to `path` atomically (a reader never sees half a summary)."""
    text = json.dumps(data, indent=2).encode() + b"\n"
    atomic_write(path, lambda handle: handle.write(text))
