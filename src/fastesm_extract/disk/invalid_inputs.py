"""Inputs none of whose records is valid (the DNA side of a pair, a file of bad letters).

Such an input gets no output. Its records are logged once; while its content and the model
stay the same, a rerun reports the file again from a "failed" manifest instead of logging
every record again. That manifest lives beside the failure log holding the lines
(`layout.invalid_input_record`), never beside the input: a training folder gets no file
named like an output, and a run with another failure log logs the records there again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest import FAILED_INPUT
from fastesm_extract.disk.manifest_schema import Manifest
from fastesm_extract.disk.store import atomic_write

log = logging.getLogger("fastesm_extract")


def remember_invalid_input(record: Path, manifest: dict) -> None:
    """Write `manifest` (state "failed") to `record`, atomically."""
    text = json.dumps(manifest, indent=2).encode() + b"\n"
    atomic_write(record, lambda handle: handle.write(text))


def remembered_invalid_input(record: Path) -> Manifest | None:
    """The "failed" manifest at `record`; None when there is none or it cannot be used
    (the input is then read and logged again, which is always safe)."""
    try:
        manifest = Manifest.from_json(json.loads(record.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as error:
        log.warning("%s cannot be used (%s): the input is read again", record, error)
        return None
    return manifest if manifest.state == FAILED_INPUT else None


def forget_failed_manifest_beside(output: Path) -> None:
    """Remove the "failed" manifest an earlier version left beside `output` (no output)."""
    beside = manifest_path(output)
    try:
        if json.loads(beside.read_text(encoding="utf-8")).get("state") == FAILED_INPUT:
            beside.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # none, or not ours to remove
