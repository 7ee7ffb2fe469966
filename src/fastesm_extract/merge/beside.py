"""Merged files beside the ESM outputs of a run (a training folder migrated in place):
which of them a merge would redo, so that `plan` does not call a folder current while its
`X_merged.pt` files hold features of ESM outputs that are, or are about to be, rebuilt."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastesm_extract.disk.layout import dnabert_s_partner, merged_name
from fastesm_extract.disk.store import load_weights_only
from fastesm_extract.disk.verdict import CURRENT, MergedBasis, judge, read_merged_manifest
from fastesm_extract.errors import MergeError
from fastesm_extract.merge.pairs import LABELS, merge_embeddings

_LABEL_NAMES = {value: name for name, value in LABELS.items()}  # [1] -> "viral", as merge takes it


def _labels(merged: Path) -> list[int] | None:
    """The labels the merged file was made with (a merge again keeps them)."""
    manifest = read_merged_manifest(merged)
    if manifest:
        return manifest.get("labels")
    try:
        return load_weights_only(merged).get("labels")
    except Exception:  # noqa: BLE001 - an unloadable merged file is judged (rebuilt) anyway
        return None


def merged_not_current(esm_outputs: Iterable[tuple[Path, bool]]) -> list[tuple[Path, str]]:
    """(merged file, why a merge would redo it) for each `X_merged.pt` beside an ESM output
    and its `X_DNABERT_S.pt`; `esm_outputs` pairs each output with whether the run is about
    to (re)write it, which makes its merged file out of date whatever it holds now."""
    found = []
    for esm, to_be_written in esm_outputs:
        dnabert_s = dnabert_s_partner(esm, esm.parent, esm.parent)
        merged = esm.parent / merged_name(dnabert_s)
        if not (merged.is_file() and dnabert_s.is_file()):
            continue
        if to_be_written or not esm.is_file():
            found.append((merged, f"its ESM input {esm.name} is to be written: merge again after"))
            continue
        labels = _labels(merged)
        label = _LABEL_NAMES.get(labels[0]) if labels else None
        basis = MergedBasis(
            dnabert_s=dnabert_s,
            esm=esm,
            labels=labels,
            merge=lambda d=dnabert_s, e=esm, lab=label: merge_embeddings(d, e, label=lab),
        )
        try:
            verdict = judge(merged, basis)
        except (MergeError, OSError) as error:
            found.append((merged, f"a merge would fail: {error}"))
            continue
        if verdict.verdict != CURRENT:
            found.append((merged, f"{verdict.verdict}: {verdict.reason}".rstrip(": ")))
    return found
