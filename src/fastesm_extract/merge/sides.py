"""The two sides of a merge, loaded safely and checked: DNABERT-S files (VirNucPro's
`extract_DNABERT_S()` output) and `_ESM.pt` files, each as IDs and one float32 block."""

from __future__ import annotations

from pathlib import Path

import torch

from fastesm_extract.disk.manifest import ManifestError, is_complete, load_manifest
from fastesm_extract.disk.store import load_embeddings, load_weights_only
from fastesm_extract.errors import MergeError, MergeFormatError, OutputError

DNABERT_S_DIM = 768
# Hidden sizes of the ESM2 family, to say which model a mismatching file probably came from.
KNOWN_ESM_SIZES = {
    320: "ESM2-8M",
    480: "ESM2-35M",
    640: "ESM2-150M",
    1280: "ESM2-650M / FastESM2_650",
    2560: "ESM2-3B",
    5120: "ESM2-15B",
}
_SHOWN_IDS = 10


def shown_ids(ids: list[str]) -> str:
    """The first IDs of a list, for a message: `a, b, ... (12 more)`."""
    more = f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(ids[:_SHOWN_IDS]) + more


def model_hint(hidden_size: int) -> str:
    name = KNOWN_ESM_SIZES.get(hidden_size)
    return f" ({name}?)" if name else ""


def load_dnabert_s(
    path: str | Path, expected_dim: int = DNABERT_S_DIM
) -> tuple[list[str], torch.Tensor]:
    """IDs and a `(n, expected_dim)` float32 block (768 for DNABERT-S) from a DNABERT-S file,
    loaded with `weights_only`.

    The file is VirNucPro's `extract_DNABERT_S()` output:
    `{'nucleotide': [id, ...], 'data': [{'label': id, 'mean_representation': [768 floats]}]}`.
    """
    path = Path(path)
    try:
        content = load_weights_only(path)
    except OutputError as error:
        raise MergeFormatError(str(error)) from error
    if isinstance(content, dict) and "proteins" in content:
        raise MergeFormatError(
            f"{path} is an _ESM.pt file, not DNABERT-S output: give the DNABERT-S file first"
        )
    if not isinstance(content, dict) or not {"nucleotide", "data"} <= set(content):
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise MergeFormatError(
            f"{path} is not a DNABERT-S file: expected keys nucleotide, data; got {keys}"
        )
    ids, items = content["nucleotide"], content["data"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MergeFormatError(f"{path}: 'nucleotide' is not a list of IDs")
    if not isinstance(items, list) or len(items) != len(ids):
        raise MergeFormatError(f"{path}: 'data' is not a list with one entry per ID")
    if not ids:
        raise MergeError(f"{path} holds no DNABERT-S embeddings")
    rows = []
    for seq_id, item in zip(ids, items):
        vector = item.get("mean_representation") if isinstance(item, dict) else None
        if isinstance(vector, torch.Tensor) and vector.dim() == 1:
            size = vector.shape[0]
        elif isinstance(vector, list):
            size = len(vector)
        else:
            raise MergeFormatError(f"{path}: {seq_id} has no 'mean_representation' list")
        if size != expected_dim:
            raise MergeError(
                f"{path}: DNABERT-S embeddings must have {expected_dim} dimensions, "
                f"{seq_id} has {size}{model_hint(size)} (--dnabert-s-dim sets another width)"
            )
        rows.append(vector)
    try:
        if all(isinstance(row, list) for row in rows):
            # One conversion for the file; equal to merge_data()'s torch.tensor() per row.
            block = torch.tensor(rows, dtype=torch.float32)  # (n, 768)
        else:
            block = torch.stack([torch.as_tensor(row, dtype=torch.float32) for row in rows])
    except (TypeError, ValueError, RuntimeError) as error:
        raise MergeFormatError(
            f"{path}: 'mean_representation' values are not numbers: {error}"
        ) from error
    if block.shape != (len(ids), expected_dim) or block.layout != torch.strided:
        raise MergeFormatError(
            f"{path}: 'mean_representation' values are not flat lists of {expected_dim} "
            f"numbers (they make a {block.layout} block of shape {tuple(block.shape)})"
        )
    finite = torch.isfinite(block).all(dim=1)
    if not bool(finite.all()):
        bad = [seq_id for seq_id, ok in zip(ids, finite.tolist()) if not ok]
        raise MergeError(
            f"{path}: DNABERT-S embeddings with NaN or infinite values: {shown_ids(bad)}"
        )
    return ids, block


def load_esm(path: str | Path, expect_dim: int | None = None) -> tuple[list[str], torch.Tensor]:
    """IDs and a `(n, hidden_size)` float32 block from an `_ESM.pt` file (`weights_only`).

    With `expect_dim`, a file of another hidden size is an error that names the likely model.
    """
    path = Path(path)
    try:
        proteins, data = load_embeddings(path)
    except OutputError as error:
        raise MergeFormatError(str(error)) from error
    if not proteins:
        raise MergeError(f"{path} holds no ESM embeddings")
    hidden_size = data[0].shape[0]  # load_embeddings guarantees one size for all
    recorded = recorded_hidden_size(path)
    if recorded is not None and recorded != hidden_size:
        raise MergeError(
            f"{path}: {hidden_size}-dim embeddings, but its manifest records hidden size "
            f"{recorded}: the file was replaced; re-extract it"
        )
    if expect_dim is not None and hidden_size != expect_dim:
        raise MergeError(
            f"{path}: ESM file has {hidden_size}-dim embeddings{model_hint(hidden_size)}, "
            f"expected {expect_dim}"
        )
    return proteins, torch.stack(data)  # (n, hidden_size)


def recorded_hidden_size(esm: Path) -> int | None:
    """The hidden size the complete manifest of `esm` records, if it has one."""
    try:
        manifest = load_manifest(esm)
    except ManifestError:
        return None
    if manifest is None or not is_complete(manifest):
        return None
    return manifest.model.hidden_size


def esm_width(esm: Path) -> int | None:
    """The width of an `_ESM.pt` file, read without loading all of it (memory-mapped)."""
    for mmap in (True, False):  # files in torch's legacy (non-zip) format cannot be mapped
        try:
            content = torch.load(esm, map_location="cpu", weights_only=True, mmap=mmap)
            first = content["data"][0]
            return int(first.shape[0]) if first.dim() == 1 else None
        except Exception:  # noqa: BLE001 - an unreadable file is reported when it is merged
            continue
    return None
