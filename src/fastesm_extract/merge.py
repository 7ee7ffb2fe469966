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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .folders import files_under
from .jobs import InputError
from .layout import (
    DNABERT_S_SUFFIX,
    dnabert_s_partner,
    esm_partner,
    is_dnabert_s_name,
    is_output_name,
    merged_name,
)
from .merge_inputs import DNABERT_S_DIM, MergeError, load_dnabert_s, load_esm, shown_ids
from .same_file import refuse_writing_over_inputs
from .store import atomic_write, load_weights_only
from .summary import FAILED, SKIPPED, WRITTEN, Status

log = logging.getLogger("fastesm_extract")

LABELS = {"viral": 1, "host": 0}


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


@dataclass(frozen=True)
class MergeOutcome:
    """What happened to one pair (or unpaired file) of a folder merge."""

    output: Path | None
    status: Status  # WRITTEN, SKIPPED or FAILED
    message: str = ""
    dnabert_s: Path | None = None
    esm: Path | None = None
    n_rows: int = 0


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
) -> MergeResult:
    """Merge a DNABERT-S file and an `_ESM.pt` file as VirNucPro's `merge_data()` does.

    Rows follow the DNABERT-S order; each is the 768 DNABERT-S values then the ESM values,
    float32. For a duplicated ID the last embedding of that ID is used on either side, as in
    the original. `label` is `'viral'`, `'host'` or None. An ID present on one side only
    raises `MergeError` listing the IDs, unless `allow_missing`: then only the rows present on
    both sides are returned and the missing IDs are in the result. Dimension problems
    (DNABERT-S not 768, ESM not `expect_dim`) raise `MergeError`.
    """
    labels = label_value(label)
    dnabert_s_path, esm_path = Path(dnabert_s_path), Path(esm_path)
    nucleotide_ids, nucleotide = load_dnabert_s(dnabert_s_path)
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
            nucleotide[[nucleotide_row[i] for i in ids]],  # (n, 768)
            protein[[protein_row[i] for i in ids]],  # (n, hidden_size)
        ),
        dim=1,
    )  # (n, 768 + hidden_size)
    return MergeResult(ids, data, labels, protein.shape[1], missing_in_esm, missing_in_dnabert_s)


def save_merged_atomic(path: str | Path, result: MergeResult) -> None:
    """Write the `merge_data()` dict of `result` to `path` atomically."""
    content = result.to_virnucpro()
    atomic_write(path, lambda handle: torch.save(content, handle))


def merge_files(
    dnabert_s_path: str | Path,
    esm_path: str | Path,
    out_path: str | Path,
    *,
    label: str | None = None,
    allow_missing: bool = False,
    expect_dim: int | None = None,
) -> MergeResult:
    """`merge_embeddings(...)`, then write the result to `out_path` atomically.

    Raises `InputError` (nothing read or written) when `out_path` is one of the inputs.
    """
    refuse_writing_over_inputs([dnabert_s_path, esm_path], [out_path], "choose another -o")
    result = merge_embeddings(
        dnabert_s_path,
        esm_path,
        label=label,
        allow_missing=allow_missing,
        expect_dim=expect_dim,
    )
    save_merged_atomic(out_path, result)
    return result


def merged_output_is_valid(
    path: Path, labels: list[int] | None, expect_dim: int | None = None
) -> bool:
    """True when `path` loads safely as a merged file with these labels (for resuming)."""
    if not path.exists():
        return False
    try:
        return _is_merged_content(load_weights_only(path), labels, expect_dim)
    except Exception:  # noqa: BLE001 - an unloadable or odd merged file is simply redone
        return False


def _is_merged_content(content: object, labels: list[int] | None, expect_dim: int | None) -> bool:
    if not isinstance(content, dict) or not {"ids", "data"} <= set(content):
        return False
    ids, data = content["ids"], content["data"]
    width = None if expect_dim is None else DNABERT_S_DIM + expect_dim
    return (
        content.get("labels") == labels
        and set(content) <= {"ids", "data", "labels"}
        and isinstance(ids, list)
        and isinstance(data, torch.Tensor)
        and data.layout == torch.strided
        and data.dim() == 2
        and data.dtype == torch.float32
        and data.shape[0] == len(ids)
        and (width is None or data.shape[1] == width)
    )


def merge_folder(
    dnabert_s_dir: str | Path,
    esm_dir: str | Path | None,
    out_dir: str | Path,
    *,
    label: str | None = None,
    allow_missing: bool = False,
    expect_dim: int | None = None,
    overwrite: bool = False,
) -> list[MergeOutcome]:
    """Merge every `X_DNABERT_S.pt` under `dnabert_s_dir` with `X_ESM.pt` into `X_merged.pt`.

    The ESM file is looked up at the same relative place under `esm_dir` (default: the same
    folder); outputs keep that layout under `out_dir`. Existing valid outputs are skipped
    unless `overwrite`. A pair that cannot be merged, or a file without its partner, is a
    FAILED outcome (unpaired files are SKIPPED with `allow_missing`); the others go on.
    Raises `MergeError` when `dnabert_s_dir` holds no DNABERT-S files and `InputError`
    (before anything is written) when a merged file would be one of the inputs.
    """
    dnabert_s_dir, out_dir = Path(dnabert_s_dir), Path(out_dir)
    esm_dir = Path(esm_dir) if esm_dir is not None else dnabert_s_dir
    labels = label_value(label)
    for folder in dict.fromkeys((dnabert_s_dir, esm_dir)):
        if not folder.is_dir():
            raise MergeError(f"{folder} is not a folder")
    dnabert_files = [p for p in files_under(dnabert_s_dir) if is_dnabert_s_name(p)]
    if not dnabert_files:
        raise MergeError(f"{dnabert_s_dir} holds no *{DNABERT_S_SUFFIX} files")
    esm_files = [p for p in files_under(esm_dir) if is_output_name(p)]
    planned = []  # (DNABERT-S file, its ESM partner, merged file)
    for dnabert_file in dnabert_files:
        esm_file = esm_partner(dnabert_file, dnabert_s_dir, esm_dir)
        relative = dnabert_file.parent.relative_to(dnabert_s_dir)
        planned.append((dnabert_file, esm_file, out_dir / relative / merged_name(dnabert_file)))
    refuse_writing_over_inputs(
        [*dnabert_files, *esm_files], [output for _, _, output in planned], "choose another -o"
    )
    unpaired_status = SKIPPED if allow_missing else FAILED
    outcomes: list[MergeOutcome] = []
    paired_esm: set[Path] = set()
    for dnabert_file, esm_file, output in planned:
        if not esm_file.is_file():
            message = f"{dnabert_file} has no ESM partner {esm_file}"
            log.log(logging.WARNING if allow_missing else logging.ERROR, "%s", message)
            outcomes.append(MergeOutcome(output, unpaired_status, message, dnabert_file, None))
            continue
        paired_esm.add(esm_file.resolve())
        if not overwrite and merged_output_is_valid(output, labels, expect_dim):
            outcomes.append(
                MergeOutcome(output, SKIPPED, "valid output exists", dnabert_file, esm_file)
            )
            continue
        try:
            result = merge_files(
                dnabert_file,
                esm_file,
                output,
                label=label,
                allow_missing=allow_missing,
                expect_dim=expect_dim,
            )
        except InputError:
            raise
        except Exception as error:  # noqa: BLE001 - one damaged pair must not stop the folder
            message = (
                str(error)
                if isinstance(error, (MergeError, OSError))
                else (f"{dnabert_file} + {esm_file}: {type(error).__name__}: {error}")
            )
            log.error("%s", message)
            outcomes.append(MergeOutcome(output, FAILED, message, dnabert_file, esm_file))
            continue
        outcomes.append(MergeOutcome(output, WRITTEN, "", dnabert_file, esm_file, len(result.ids)))
    for esm_file in esm_files:
        if esm_file.resolve() not in paired_esm:
            partner = dnabert_s_partner(esm_file, esm_dir, dnabert_s_dir)
            message = f"{esm_file} has no DNABERT-S partner {partner}"
            log.log(logging.WARNING if allow_missing else logging.ERROR, "%s", message)
            outcomes.append(MergeOutcome(None, unpaired_status, message, None, esm_file))
    return outcomes
