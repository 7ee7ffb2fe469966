"""Refuse a `.pt` file that would inflate far beyond its size when loaded.

`torch.save` writes its zip archive uncompressed, so an output's declared content is about
its file size. A deflated archive (not written by torch.save) can declare gigabytes in a
few hundred kilobytes: `torch.load` would allocate them all before anything could be
checked. The zip directory is read first, and such a file is refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

_SLACK_BYTES = 16 << 20  # headers and small records; far below what a bomb declares


class ArchiveTooLargeError(ValueError):
    """The archive declares much more content than its size."""


def check_archive_size(path: str | Path) -> None:
    """Raise `ArchiveTooLargeError` when `path` is a zip whose entries declare more than
    twice its size (plus slack); other files (torch's legacy format) pass unchecked."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: torch.load reports what it is
    size = path.stat().st_size
    if declared > 2 * size + _SLACK_BYTES:
        raise ArchiveTooLargeError(
            f"declares {declared:,} bytes of content in a {size:,}-byte file (a compressed "
            "archive, not written by torch.save): refused without loading it"
        )
