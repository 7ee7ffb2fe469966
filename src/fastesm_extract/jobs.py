"""Command-line inputs (files and folders) -> (FASTA, output path) jobs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError
from .folders import files_under
from .handoff import FileJob  # noqa: F401 - defined with the other hand-offs
from .layout import is_fasta_name, output_path_for


def plan_jobs(inputs: list[str | Path], output_dir: str | Path | None = None) -> list[FileJob]:
    """Expand files and folders (searched recursively for .fa/.faa/.fasta[.gz], symlinked
    sub-folders followed) into jobs.

    Raises `InputError` for a missing path, a folder without FASTA files, or two inputs that
    would write the same output.
    """
    out = Path(output_dir) if output_dir is not None else None
    jobs: list[FileJob] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [p for p in files_under(path) if is_fasta_name(p)]
            if not found:
                raise InputError(f"{path} is a folder with no .fa/.faa/.fasta(.gz) files")
            jobs.extend(FileJob(p, output_path_for(p, out, path)) for p in found)
        elif path.exists():
            jobs.append(FileJob(path, output_path_for(path, out, None)))
        else:
            raise InputError(f"{path} does not exist")
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen and seen[key] != job.fasta.resolve():
            raise InputError(
                f"{seen[key]} and {job.fasta} would both write {job.output}; rename one"
            )
        seen[key] = job.fasta.resolve()
    # The same file named twice (e.g. a file and its folder) is done once.
    unique = {job.output.resolve(): job for job in jobs}
    return list(unique.values())


def input_vanished(job: FileJob) -> bool:
    """True when the job's input, there when the jobs were planned, is gone now."""
    return not os.path.lexists(job.fasta)


def vanished_message(job: FileJob) -> str:
    return f"the input vanished: {job.fasta} was deleted or moved during the run; no output"


def check_writable(jobs: list[FileJob]) -> None:
    """Fail early, before the model loads, when an output folder cannot be written.

    Creates each distinct output folder and a probe file in it; raises `InputError`.
    """
    for folder in sorted({job.output.parent for job in jobs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise InputError(
                f"cannot write outputs to {folder}: {error.strerror or error}"
            ) from error


def check_failure_log(path: Path) -> None:
    """Fail early, before any work, when the failure log path is a folder."""
    if path.is_dir():
        raise InputError(
            f"--failure-log {path} is a folder: give a file path, e.g. {path / 'failures.log'}"
        )
