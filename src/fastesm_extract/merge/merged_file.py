"""A merged file: its content (`MergeResult`), its atomic write and its manifest
(`x_merged.pt.json`); whether an existing one is current is `disk.verdict`'s to say.

A merged file follows the rule of every output (see `currency`): it records what it was made
from (both inputs' hashes and widths, the ESM model when known, the label) and the merged
file it describes (size, hash). Current when both inputs and the label are unchanged;
rebuilt when an input changed; an old merged file without manifest is compared with the
merge of its inputs: equal -> adopted; an input newer than it -> rebuilt; another width
(another model's features) -> stale; otherwise rebuilt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest import (
    COMPLETE,
    FORMAT_VERSION,
    ManifestError,
    file_identity,
    read_manifest,
    utc_now,
    write_manifest,
)
from fastesm_extract.disk.store import atomic_write, remove_leftover_temporaries
from fastesm_extract.disk.verdict import MERGED_KIND, read_merged_manifest

log = logging.getLogger("fastesm_extract")


def _esm_model(esm: Path) -> str | None:
    try:
        manifest = read_manifest(esm)
    except ManifestError:
        return None
    return (manifest or {}).get("model", {}).get("id")


def write_merged_manifest(output: Path, dnabert_s: Path, esm: Path, result: MergeResult) -> None:
    width = int(result.data.shape[1])
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": MERGED_KIND,
        "state": COMPLETE,
        "inputs": {
            "dnabert_s": {
                "path": str(dnabert_s),
                "absolute_path": str(dnabert_s.resolve()),  # where `verify` finds it again
                **file_identity(dnabert_s),
                "width": width - result.hidden_size,
            },
            "esm": {
                "path": str(esm),
                "absolute_path": str(esm.resolve()),
                **file_identity(esm),
                "width": result.hidden_size,
                "model": _esm_model(esm),
            },
        },
        "labels": result.labels,
        "rows": len(result.ids),
        "width": width,
        "output": file_identity(output),
        "finished": utc_now(),
    }
    write_manifest(output, manifest)


def forget_merged_manifest(output: str | Path) -> None:
    manifest_path(output).unlink(missing_ok=True)


def made_here(output: Path) -> bool:
    """Whether `output` is the complete merged file its own manifest describes: this tool's
    merge of recorded inputs (so it can be removed, where another file is only moved)."""
    manifest = read_merged_manifest(output) or {}
    return (
        manifest.get("kind") == MERGED_KIND
        and manifest.get("state") == COMPLETE
        and manifest.get("output") == file_identity(output)
    )


@dataclass(frozen=True)
class MergeResult:
    """Merged embeddings of one DNABERT-S/ESM pair, rows in DNABERT-S order."""

    ids: list[str]
    data: torch.Tensor  # (n, 768 + hidden_size) float32
    labels: list[int] | None  # [1] viral, [0] host, None unlabelled
    hidden_size: int  # of the ESM side
    missing_in_esm: list[str] = field(default_factory=list)  # DNABERT-S IDs without ESM row
    missing_in_dnabert_s: list[str] = field(default_factory=list)  # ESM IDs without DNABERT-S

    @property
    def complete(self) -> bool:
        return not self.missing_in_esm and not self.missing_in_dnabert_s

    def to_virnucpro(self) -> dict:
        """The dict `merge_data()` saves: `{'ids', 'data'}` (+ `'labels'` when labelled)."""
        content: dict = {"ids": self.ids, "data": self.data}
        if self.labels is not None:
            content["labels"] = self.labels
        return content


def save_merged_atomic(path: str | Path, result: MergeResult) -> None:
    """Write the `merge_data()` dict of `result` to `path` atomically."""
    content = result.to_virnucpro()
    atomic_write(path, lambda handle: torch.save(content, handle))


def write_merge(out_path: Path, dnabert_s_path: Path, esm_path: Path, result: MergeResult) -> None:
    """The merged file and then its manifest; a kill in between leaves a merged file whose
    manifest is gone, which the next run compares with its inputs' merge."""
    remove_leftover_temporaries(out_path)  # a killed merge's, never cleaned otherwise
    forget_merged_manifest(out_path)  # the old one no longer describes what is written
    save_merged_atomic(out_path, result)
    write_merged_manifest(out_path, dnabert_s_path, esm_path, result)
