"""The one check every command makes before writing: no output is the same file as an input.

"The same file" whatever the spelling: relative or absolute, `..`, symlinks (of the file or
of a folder above it) and hard links. Files that exist are compared by identity (device and
inode, as `os.path.samefile` does); paths that do not exist yet by their resolved form.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fastesm_extract.errors import InputError


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def _resolved(path: Path) -> str:
    return os.path.realpath(os.path.abspath(path))


class _Files:
    """Paths, found again by identity (existing files) or by resolved path (the others)."""

    def __init__(self) -> None:
        self.by_identity: dict[tuple[int, int], Path] = {}
        self.by_path: dict[str, Path] = {}

    def add(self, path: Path) -> None:
        if (key := _identity(path)) is not None:
            self.by_identity[key] = path
        self.by_path[_resolved(path)] = path

    def find(self, path: Path) -> Path | None:
        key = _identity(path)
        return self.by_identity.get(key) if key is not None else self.by_path.get(_resolved(path))


def refuse_writing_over_inputs(
    inputs: Iterable[str | Path],
    outputs: Iterable[str | Path],
    advice: str = "",
    also_written: Iterable[str | Path] = (),
) -> None:
    """Raise `InputError` if any of `outputs` (every file a command may write: embeddings,
    manifests, parts, merged files, the failure log, the summary JSON) is the same file as
    one of `inputs`, or as another of `outputs` or of `also_written` (files the command
    writes, checked elsewhere): one write would destroy the other.

    Call it before anything is written, so a refused command leaves everything as it was.
    """
    advice = advice or "choose another output path"
    sources, written = _Files(), _Files()
    for item in inputs:
        sources.add(Path(item))
    for item in also_written:
        written.add(Path(item))
    for item in outputs:
        output = Path(item)
        if (source := sources.find(output)) is not None:
            raise InputError(
                f"refusing to write {output}: it is the same file as the input {source}, "
                f"which would be lost; {advice}"
            )
        if (other := written.find(output)) is not None:
            raise InputError(
                f"refusing to write {output}: it is the same file as {other}, which this "
                f"command writes too (one would destroy the other); {advice}"
            )
        written.add(output)
