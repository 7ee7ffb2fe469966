"""What a manifest records of an input: the bytes that were parsed (path, size, hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputRead:
    """The input as it was parsed: its path, and the size and hash of the bytes read."""

    path: Path
    size: int
    sha256: str

    def as_manifest(self) -> dict:
        return {
            "path": str(self.path),
            "absolute_path": str(Path(self.path).resolve()),
            "size": self.size,
            "sha256": self.sha256,
        }
