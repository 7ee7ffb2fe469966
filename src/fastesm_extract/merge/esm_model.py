"""The ESM model of a merge: the model that made its manifested `_ESM.pt` inputs.

Never a majority: the merge's ESM width is the hidden size of the one model the ESM
manifests name (or `--expect-dim`). ESM files made by two models cannot be merged together;
an ESM file without manifest of another width is another model's features: stale (kept,
reported, its pair not merged). Without any manifest, every ESM file must share one width.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.currency import manifest_model_key
from fastesm_extract.disk.manifest import ManifestError, load_manifest
from fastesm_extract.errors import MergeError
from fastesm_extract.merge.sides import esm_width, model_hint


@dataclass(frozen=True)
class MergeModel:
    """What every ESM side of this merge must come from."""

    width: int | None  # None: no width can be told (no ESM file loads)
    model_key: str | None  # None: no ESM file has a manifest
    name: str  # for messages: the model, or where the width comes from


def merge_model(esm_files: list[Path], expect_dim: int | None) -> MergeModel:
    """The model (and so the width) of a merge of `esm_files`; raises `MergeError` when the
    manifested files name two models, or when neither manifests nor `expect_dim` tell a
    width and the files have several."""
    models: dict[str, tuple[str, int | None, list[Path]]] = {}
    for esm in esm_files:
        try:
            manifest = load_manifest(esm)
        except ManifestError:
            continue  # judged, and reported, with its pair
        if manifest is None or manifest.model.id is None:
            continue
        key = manifest_model_key(manifest.model)
        models.setdefault(key, (manifest.model.id, manifest.model.hidden_size, []))[2].append(esm)
    if len(models) > 1:
        shown = "; ".join(
            f"{name!r} ({len(files)} files, e.g. {files[0]})" for name, _, files in models.values()
        )
        raise MergeError(
            f"the ESM files were made by {len(models)} models: {shown}. Re-extract them with "
            "one model (`fastesm-extract extract --redo-stale ...`) before merging"
        )
    if models:
        key, (name, hidden_size, _) = next(iter(models.items()))
        if expect_dim is not None and hidden_size is not None and hidden_size != expect_dim:
            raise MergeError(
                f"--expect-dim {expect_dim}, but the ESM files were made by {name!r}, which "
                f"gives {hidden_size}{model_hint(hidden_size)}"
            )
        return MergeModel(hidden_size or expect_dim, key, name)
    if expect_dim is not None:
        return MergeModel(expect_dim, None, "--expect-dim")
    widths = Counter(w for w in map(esm_width, esm_files) if w is not None)
    if len(widths) > 1:
        shown = ", ".join(f"{w}{model_hint(w)} ({n} files)" for w, n in widths.most_common())
        raise MergeError(
            f"ESM files of different widths and no manifest naming their model: {shown}; "
            "give --expect-dim"
        )
    width = next(iter(widths), None)
    return MergeModel(width, None, f"all ESM files are {width}-dim" if width else "")
