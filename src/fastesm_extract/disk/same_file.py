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


def refuse_writing_over_inputs(
    inputs: Iterable[str | Path], outputs: Iterable[str | Path], advice: str = ""
) -> None:
    """Raise `InputError` if any of `outputs` (every file a command may write: embeddings,
    manifests, parts, merged files, the failure log) is the same file as one of `inputs`.

    Call it before anything is written, so a refused command leaves everything as it was.
    """
    by_identity: dict[tuple[int, int], Path] = {}
    by_path: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if (key := _identity(path)) is not None:
            by_identity[key] = path
        by_path[_resolved(path)] = path
    for item in outputs:
        output = Path(item)
        key = _identity(output)
        source = by_identity.get(key) if key is not None else by_path.get(_resolved(output))
        if source is not None:
            raise InputError(
                f"refusing to write {output}: it is the same file as the input {source}, "
                f"which would be lost; {advice or 'choose another output path'}"
            )
