"""Files under a folder, recursively, following symlinked sub-folders (clusters often link
data folders in) with loop protection: each real folder is searched once."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("fastesm_extract")


def files_under(folder: str | Path) -> list[Path]:
    """Every file under `folder`, sorted by path, symlinked sub-folders followed.

    A folder reached a second time (a symlink loop, or two links to one folder) is searched
    only once; that, a broken link and an unreadable folder are reported as warnings.
    """
    found: list[Path] = []
    seen: dict[tuple[int, int], Path] = {}  # (device, inode) of each real folder searched
    pending = [Path(folder)]
    while pending:
        directory = pending.pop()
        try:
            status = os.stat(directory)
            entries = list(os.scandir(directory))
        except OSError as error:
            log.warning("%s cannot be searched: %s", directory, error.strerror or error)
            continue
        key = (status.st_dev, status.st_ino)
        if key in seen:
            log.warning("%s is not searched again: it is the folder %s", directory, seen[key])
            continue
        seen[key] = directory
        for entry in entries:
            path = directory / entry.name
            try:
                if entry.is_dir():  # follows a symlink
                    pending.append(path)
                elif entry.is_file():
                    found.append(path)
                elif entry.is_symlink() and not path.exists():
                    log.warning("%s is a broken symlink: skipped", path)
            except OSError as error:
                log.warning("%s cannot be read: %s", path, error.strerror or error)
    return sorted(found)


def selected(path: Path, folder: Path, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """True when `path`, found under `folder`, is taken: it matches an `include` glob (when
    any is given) and no `exclude` glob.

    A glob matches the file's name (`*_nucleotide.fa`) or its path relative to `folder`
    (`host/*.fa`), case-sensitively, as `fnmatch` does (so `*` also crosses a `/`).
    """
    names = (path.name, path.relative_to(folder).as_posix())

    def matches(globs: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, glob) for glob in globs for name in names)

    return (not include or matches(include)) and not matches(exclude)
