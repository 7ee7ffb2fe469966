"""DNABERT-S + ESM embeddings -> VirNucPro `_merged.pt` files (the MLP's input).

The result is that of VirNucPro's `merge_data()`: one row per ID in DNABERT-S order,
`torch.cat((dnabert_s, esm))`, float32, as `{'ids', 'data'}` plus `'labels': [1]` (viral) or
`[0]` (host), a single-element list for the whole file, as the original writes it.

One deliberate difference: when an ID is on one side only, the original skips its row but
still lists it in `ids`, so `ids` and `data` no longer line up. Here `ids` lists the merged
rows only, the missing IDs are reported, and that is an error unless explicitly allowed.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import torch

from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.errors import MergeError
from fastesm_extract.merge.merged_file import MergeResult, write_merge
from fastesm_extract.merge.sides import DNABERT_S_DIM, load_dnabert_s, load_esm, shown_ids

log = logging.getLogger("fastesm_extract")

LABELS = {"viral": 1, "host": 0}


def label_value(label: str | None) -> list[int] | None:
    """`'viral'` -> `[1]`, `'host'` -> `[0]`, `None` -> `None` (as `merge_data(data_type=...)`)."""
    if label is None:
        return None
    if label not in LABELS:
        raise ValueError(f"label must be 'viral', 'host' or None, not {label!r}")
    return [LABELS[label]]


def _warn_duplicates(path: Path, ids: list[str], used: str) -> None:
    duplicates = [seq_id for seq_id, count in Counter(ids).items() if count > 1]
    if duplicates:
        log.warning(
            "%s: %d duplicate IDs; %s (as merge_data()): %s",
            path,
            len(duplicates),
            used,
            shown_ids(duplicates),
        )


def merge_embeddings(
    dnabert_s_path: str | Path,
    esm_path: str | Path,
    *,
    label: str | None = None,
    allow_missing: bool = False,
    expect_dim: int | None = None,
    dnabert_s_dim: int = DNABERT_S_DIM,
) -> MergeResult:
    """Merge a DNABERT-S file and an `_ESM.pt` file as VirNucPro's `merge_data()` does.

    Rows follow the DNABERT-S order; each is the 768 DNABERT-S values then the ESM values,
    float32. For a duplicated ID the last embedding of that ID is used on either side, as in
    the original. `label` is `'viral'`, `'host'` or None. An ID present on one side only
    raises `MergeError` listing the IDs, unless `allow_missing`: then only the rows present on
    both sides are returned and the missing IDs are in the result. Dimension problems
    (DNABERT-S not `dnabert_s_dim`, ESM not `expect_dim` or not the hidden size its
    manifest records) raise `MergeError`.
    """
    labels = label_value(label)
    dnabert_s_path, esm_path = Path(dnabert_s_path), Path(esm_path)
    nucleotide_ids, nucleotide = load_dnabert_s(dnabert_s_path, dnabert_s_dim)
    protein_ids, protein = load_esm(esm_path, expect_dim)
    _warn_duplicates(dnabert_s_path, nucleotide_ids, "each row uses the last embedding")
    _warn_duplicates(esm_path, protein_ids, "the last embedding of each is used")
    # Last occurrence wins, as with merge_data()'s dicts.
    nucleotide_row = {seq_id: row for row, seq_id in enumerate(nucleotide_ids)}
    protein_row = {seq_id: row for row, seq_id in enumerate(protein_ids)}
    ids = [seq_id for seq_id in nucleotide_ids if seq_id in protein_row]
    missing_in_esm = [i for i in dict.fromkeys(nucleotide_ids) if i not in protein_row]
    missing_in_dnabert_s = [i for i in dict.fromkeys(protein_ids) if i not in nucleotide_row]
    problems = []
    if missing_in_esm:
        problems.append(
            f"{len(missing_in_esm)} IDs of {dnabert_s_path} have no ESM embedding in "
            f"{esm_path}: {shown_ids(missing_in_esm)}"
        )
    if missing_in_dnabert_s:
        problems.append(
            f"{len(missing_in_dnabert_s)} IDs of {esm_path} have no DNABERT-S embedding in "
            f"{dnabert_s_path}: {shown_ids(missing_in_dnabert_s)}"
        )
    if not ids:
        raise MergeError(f"{dnabert_s_path} and {esm_path} have no IDs in common")
    if problems and not allow_missing:
        raise MergeError(
            "; ".join(problems)
            + f" (--allow-missing / allow_missing=True keeps the {len(ids)} merged rows only)"
        )
    for problem in problems:
        log.warning("%s; kept the %d merged rows only", problem, len(ids))
    data = torch.cat(
        (
            nucleotide[[nucleotide_row[i] for i in ids]],  # (n, dnabert_s_dim)
            protein[[protein_row[i] for i in ids]],  # (n, hidden_size)
        ),
        dim=1,
    )  # (n, 768 + hidden_size)
    return MergeResult(ids, data, labels, protein.shape[1], missing_in_esm, missing_in_dnabert_s)


def merge_files(
    dnabert_s_path: str | Path,
    esm_path: str | Path,
    out_path: str | Path,
    *,
    label: str | None = None,
    allow_missing: bool = False,
    expect_dim: int | None = None,
    dnabert_s_dim: int = DNABERT_S_DIM,
) -> MergeResult:
    """`merge_embeddings(...)`, then write the result to `out_path` atomically, with its
    manifest `<out_path>.json` (both inputs' hashes and widths, the label).

    Raises `InputError` (nothing read or written) when `out_path` is one of the inputs.
    """
    written = [out_path, manifest_path(out_path)]
    refuse_writing_over_inputs([dnabert_s_path, esm_path], written, "choose another -o")
    result = merge_embeddings(
        dnabert_s_path,
        esm_path,
        label=label,
        allow_missing=allow_missing,
        expect_dim=expect_dim,
        dnabert_s_dim=dnabert_s_dim,
    )
    write_merge(Path(out_path), Path(dnabert_s_path), Path(esm_path), result)
    return result
