"""The sha256 of a file, taken from its manifest when its stat identity is unchanged.

Hashing a finished 10,000-record output (50 MB) and its FASTA takes 0.1-0.2 s, so a rerun
over a thousand finished files would pay minutes before any work. A manifest therefore
records, beside each file's size and sha256, its stat identity (mtime_ns, ctime_ns, inode,
device), and a rerun or `plan` hashes again only a file whose size or identity differs;
`verify` always hashes in full.

The kernel sets ctime on every change to a file (a write, a rename over it, `os.utime`
itself) and no call sets it back, so content edited in place, even with its size and mtime
restored, and a file copied or moved over the recorded one, all differ. Left unseen: an edit
within the file system's timestamp granularity (a few ms) of the stat that was recorded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

IDENTITY_FIELDS = ("mtime_ns", "ctime_ns", "inode", "device")


def stat_identity(status: os.stat_result) -> dict[str, int]:
    """The identity fields a manifest records of a file, from its `os.stat` result."""
    return {
        "mtime_ns": status.st_mtime_ns,
        "ctime_ns": status.st_ctime_ns,
        "inode": status.st_ino,
        "device": status.st_dev,
    }


def unchanged_identity(before: os.stat_result, after: os.stat_result) -> dict[str, int]:
    """The identity to record of a file hashed between `before` and `after`: none ({}) when
    it changed meanwhile, so the next check hashes it again."""
    identity = stat_identity(before)
    same = identity == stat_identity(after) and before.st_size == after.st_size
    return identity if same else {}


def recorded_sha256(path: str | Path, recorded: Mapping | object | None) -> str | None:
    """The recorded sha256 when `path` has the recorded size and stat identity now; None
    when it must be hashed. `recorded`: a manifest's `input` or `output` section, as JSON or
    typed (`ManifestFile`)."""

    def field(name: str) -> object:
        if isinstance(recorded, Mapping):
            return recorded.get(name)
        return getattr(recorded, name, None)

    sha256 = field("sha256")
    if not isinstance(sha256, str):
        return None
    status = os.stat(path)
    now = {"size": status.st_size, **stat_identity(status)}
    return sha256 if all(field(name) == value for name, value in now.items()) else None
