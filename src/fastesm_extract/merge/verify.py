"""`fastesm-extract verify` for the merge's files: `_DNABERT_S.pt` inputs and `_merged.pt`
outputs (width, finite values, counts, IDs aligned with rows; a merged file's manifest
against the inputs as they are now), beside the `_ESM.pt` checks of `disk.verify`."""

from __future__ import annotations

from pathlib import Path

import torch

from fastesm_extract.disk.folders import files_under
from fastesm_extract.disk.layout import (
    DNABERT_S_SUFFIX,
    MERGED_SUFFIX,
    OUTPUT_SUFFIX,
    is_dnabert_s_name,
    is_output_name,
)
from fastesm_extract.disk.manifest import (
    COMPLETE,
    ManifestError,
    file_identity,
    read_manifest_json,
    sha256_of,
)
from fastesm_extract.disk.store import load_weights_only
from fastesm_extract.disk.verdict import MERGED_KIND
from fastesm_extract.disk.verify import VerifyReport, verify_output
from fastesm_extract.errors import MergeError, OutputError
from fastesm_extract.merge.pairs import LABELS
from fastesm_extract.merge.sides import DNABERT_S_DIM, load_dnabert_s, shown_ids

SIDES = {"dnabert_s": ("DNABERT-S", DNABERT_S_SUFFIX), "esm": ("ESM", OUTPUT_SUFFIX)}


def is_merged_name(path: Path) -> bool:
    return path.name.endswith(MERGED_SUFFIX)


def find_verifiable(paths: list[str | Path]) -> list[Path]:
    """`_ESM.pt`, `_merged.pt` and `_DNABERT_S.pt` files named directly or found under
    folders (a merged folder holds only `_merged.pt` files)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if not item.is_dir():
            found.append(item)
            continue
        for path in files_under(item):
            if is_output_name(path) or is_merged_name(path) or is_dnabert_s_name(path):
                found.append(path)
    return found


def verify_file(
    path: str | Path, fasta: str | Path | None = None, expected_dim: int | None = None
) -> VerifyReport:
    """The report on any file `verify` takes, by its name; `expected_dim` is the ESM width
    (a merged file is then `768 + expected_dim` wide). Never raises for a damaged file."""
    path = Path(path)
    if not (is_merged_name(path) or is_dnabert_s_name(path)):
        return verify_output(path, fasta, expected_dim)
    report = VerifyReport(path)
    check = _verify_merged if is_merged_name(path) else _verify_dnabert_s
    try:
        check(report, expected_dim)
    except Exception as error:  # noqa: BLE001 - one odd file must not stop a folder's check
        report.problems.append(f"cannot be checked: {type(error).__name__}: {error}")
    return report


def _verify_dnabert_s(report: VerifyReport, expected_dim: int | None) -> None:
    """What `merge` reads (keys, one 768-wide finite vector per ID), plus each entry's
    `label` equal to the ID at its place: `merge_data()` pairs by position, not label."""
    try:
        ids, block = load_dnabert_s(report.output)  # (n, 768)
    except MergeError as error:
        report.problems.append(str(error))
        return
    report.n_records, report.hidden_size = len(ids), int(block.shape[1])
    entries = load_weights_only(report.output)["data"]
    labels = [entry.get("label") for entry in entries]
    if moved := [seq_id for seq_id, label in zip(ids, labels) if label != seq_id]:
        report.problems.append(
            f"{len(moved)} entries whose 'label' is not the ID at their place in "
            f"'nucleotide' (IDs and data not aligned): {shown_ids(moved)}"
        )
    if len(set(ids)) != len(ids):
        report.notes.append("duplicate IDs (merge_data() keeps the last of each)")


def _verify_merged(report: VerifyReport, expected_dim: int | None) -> None:
    try:
        content = load_weights_only(report.output)
    except OutputError as error:
        report.problems.append(str(error))
        return
    keys = sorted(content) if isinstance(content, dict) else type(content).__name__
    if not isinstance(content, dict) or not {"ids", "data"} <= set(content) <= {
        "ids",
        "data",
        "labels",
    }:
        report.problems.append(f"not a merged file: expected keys ids, data (labels); got {keys}")
        return
    ids, data = content["ids"], content["data"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        report.problems.append("'ids' is not a list of IDs")
        return
    dense = isinstance(data, torch.Tensor) and data.layout == torch.strided and data.dim() == 2
    if not dense or data.dtype != torch.float32:
        report.problems.append("'data' is not a float32 (rows, width) tensor")
        return
    report.n_records, report.hidden_size = len(ids), int(data.shape[1])
    if data.shape[0] != len(ids):  # the original merge_data() lists IDs it has no row for
        report.problems.append(f"{len(ids)} IDs but {data.shape[0]} rows: IDs and rows not aligned")
    if not ids:
        report.problems.append("holds no rows")
    finite = torch.isfinite(data).all(dim=1).tolist()
    if bad := [seq_id for seq_id, ok in zip(ids, finite) if not ok]:
        report.problems.append(f"rows with NaN or infinite values: {shown_ids(bad)}")
    labels = content.get("labels")
    if "labels" in content and labels not in [[value] for value in LABELS.values()]:
        report.problems.append(f"labels {labels!r}: expected [1] (viral) or [0] (host)")
    try:
        manifest = read_manifest_json(report.output)
    except ManifestError as error:
        report.problems.append(str(error))
        return
    if manifest is None:
        _check_without_manifest(report, expected_dim)
    else:
        _check_manifest(report, manifest, len(ids), labels, expected_dim)


def _width_problem(report: VerifyReport, dnabert_s_width: int, expected_dim: int | None) -> None:
    esm_width = (report.hidden_size or 0) - dnabert_s_width
    if expected_dim is not None and esm_width != expected_dim:
        report.problems.append(
            f"{report.hidden_size} wide: {dnabert_s_width} DNABERT-S + {esm_width} ESM, "
            f"expected {dnabert_s_width} + {expected_dim}"
        )
    elif esm_width < 1:
        report.problems.append(f"{report.hidden_size} wide: no ESM columns after DNABERT-S's")


def _check_manifest(
    report: VerifyReport, manifest: object, rows: int, labels: object, expected_dim: int | None
) -> None:
    """The manifest is the merged file's, complete, and describes it; both inputs it was
    made from are as they were (an input rebuilt since makes it out of date)."""
    if not isinstance(manifest, dict) or manifest.get("kind") != MERGED_KIND:
        report.problems.append("its manifest is not a merged file's")
        return
    if manifest.get("state") != COMPLETE:
        report.problems.append("its manifest was never completed: rerun merge")
        return
    if manifest.get("output") != file_identity(report.output):
        report.problems.append("it is not the merged file its manifest describes: rerun merge")
    inputs = manifest.get("inputs") or {}
    recorded = {side: (inputs.get(side) or {}).get("width") for side in SIDES}
    if (manifest.get("rows"), manifest.get("width"), manifest.get("labels")) != (
        rows,
        report.hidden_size,
        labels,
    ):
        report.problems.append("its rows, width or labels are not those its manifest records")
    if recorded["esm"] is not None and recorded["dnabert_s"] is not None:
        if recorded["esm"] + recorded["dnabert_s"] != report.hidden_size:
            report.problems.append(f"its manifest's input widths {recorded} do not add up")
    _width_problem(report, recorded["dnabert_s"] or DNABERT_S_DIM, expected_dim)
    for side, (name, suffix) in SIDES.items():
        entry = inputs.get(side) or {}
        source = _input_file(report.output, entry, suffix)
        if source is None:
            report.notes.append(f"its {name} input {entry.get('path')} is not found: not checked")
        elif sha256_of(source) != entry.get("sha256"):
            report.problems.append(
                f"out of date: its {name} input {source} changed (rebuilt) since it was made; "
                "rerun merge"
            )


def _check_without_manifest(report: VerifyReport, expected_dim: int | None) -> None:
    """An original-pipeline merged file: out of date when an input beside it is newer."""
    report.notes.append("no manifest (original pipeline): inputs compared by time only")
    _width_problem(report, DNABERT_S_DIM, expected_dim)
    made = report.output.stat().st_mtime
    for name, suffix in SIDES.values():
        source = _input_file(report.output, {}, suffix)
        if source is not None and source.stat().st_mtime > made:
            report.problems.append(f"out of date: its {name} input {source} is newer; rerun merge")


def _input_file(merged: Path, entry: dict, suffix: str) -> Path | None:
    """An input of `merged`: where its manifest says (absolute, else as given), else the
    file of that kind beside it (an in-place merge)."""
    stem = merged.name.removesuffix(MERGED_SUFFIX)
    candidates = [entry.get("absolute_path"), entry.get("path"), merged.with_name(stem + suffix)]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)
