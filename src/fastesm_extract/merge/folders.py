"""Folder merge: every `X_DNABERT_S.pt` + `X_ESM.pt` -> `X_merged.pt`, each pair its own
outcome, existing merged files kept only while they are current (see `merged_manifest`).

Widths are checked without being told: the ESM width is that of the model the ESM
manifests name (`esm_model`, or `expect_dim`), never a majority; an ESM file without
manifest of another width is stale (its pair is not merged); DNABERT-S is 768 unless
`dnabert_s_dim` says otherwise. A pair that fails never leaves an old merged file
that looks current (see `_set_aside`); nothing is written over, one `X_merged.pt.outdated` at most.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.folders import files_under
from fastesm_extract.disk.layout import (
    DNABERT_S_SUFFIX,
    dnabert_s_partner,
    esm_partner,
    is_dnabert_s_name,
    is_output_name,
    manifest_path,
    merged_name,
)
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.disk.verdict import (
    CURRENT,
    REBUILD,
    MergedBasis,
    MergeInputBasis,
    Verdict,
    judge,
)
from fastesm_extract.errors import InputError, MergeError
from fastesm_extract.merge.esm_model import MergeModel, merge_model
from fastesm_extract.merge.merged_file import (
    forget_merged_manifest,
    made_here,
    write_merge,
    write_merged_manifest,
)
from fastesm_extract.merge.pairs import (
    label_value,
    merge_embeddings,
)
from fastesm_extract.merge.sides import (
    DNABERT_S_DIM,
    esm_width,
    model_hint,
)
from fastesm_extract.results import FAILED, SKIPPED, STALE, WRITTEN, Status

log = logging.getLogger("fastesm_extract")

OUTDATED_SUFFIX = ".outdated"


def _set_aside(output: Path) -> str:
    """Take an old merged file out of the way of a failed pair; the message says how.

    The tool's own merged file is removed: a merge of recorded inputs, rebuilt once the
    pair merges. Any other (no manifest: the original pipeline's, or edited) is moved to
    `X_merged.pt.outdated`, unless that name is taken: the file there (set aside earlier,
    so the oldest features, or the user's) is never written over, and this one stays."""
    if not output.exists():
        return ""
    if made_here(output):
        output.unlink()
        forget_merged_manifest(output)
        return f"; the old {output.name} (this tool's merge of earlier inputs) was removed"
    aside = output.with_name(output.name + OUTDATED_SUFFIX)
    if aside.exists() or aside.is_symlink():
        return (
            f"; the old {output.name} was left in place: {aside.name} already exists and is "
            "kept, never written over (move one of them away)"
        )
    os.replace(output, aside)
    forget_merged_manifest(output)
    return f"; the old {output.name} was moved to {aside.name} so it is not taken for current"


def merge_folder(
    dnabert_s_dir: str | Path,
    esm_dir: str | Path | None,
    out_dir: str | Path,
    *,
    label: str | None = None,
    allow_missing: bool = False,
    expect_dim: int | None = None,
    dnabert_s_dim: int = DNABERT_S_DIM,
    overwrite: bool = False,
    redo_stale: bool = False,
) -> list[MergeOutcome]:
    """Merge every `X_DNABERT_S.pt` under `dnabert_s_dir` with `X_ESM.pt` into `X_merged.pt`.

    The ESM file is looked up at the same relative place under `esm_dir` (default: the same
    folder); outputs keep that layout under `out_dir`. A current merged file is SKIPPED, one
    whose input changed is rebuilt, one of another width without manifest is STALE (kept;
    rebuilt with `redo_stale`); `overwrite` rebuilds all. A pair that cannot be merged, or a
    file without its partner, is FAILED (unpaired files are SKIPPED with `allow_missing`);
    the others go on. Raises `MergeError` when `dnabert_s_dir` holds no DNABERT-S files and
    `InputError` (before anything is written) when a merged file would be one of the inputs.
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
    written = [path for *_, output in planned for path in (output, manifest_path(output))]
    refuse_writing_over_inputs([*dnabert_files, *esm_files], written, "choose another -o")
    model = merge_model([esm for _, esm, _ in planned if esm.is_file()], expect_dim)
    options = dict(label=label, allow_missing=allow_missing, dnabert_s_dim=dnabert_s_dim)
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
        try:
            outcome = _merge_pair(
                dnabert_file, esm_file, output, model, labels, options, overwrite, redo_stale
            )
        except InputError:
            raise
        except Exception as error:  # noqa: BLE001 - one damaged pair must not stop the folder
            message = (
                str(error)
                if isinstance(error, (MergeError, OSError))
                else (f"{dnabert_file} + {esm_file}: {type(error).__name__}: {error}")
            )
            try:
                message += _set_aside(output)
            except OSError as aside_error:
                message += f"; the old {output.name} could not be moved aside: {aside_error}"
            log.error("%s", message)
            outcome = MergeOutcome(output, FAILED, message, dnabert_file, esm_file)
        outcomes.append(outcome)
    for esm_file in esm_files:
        if esm_file.resolve() not in paired_esm:
            partner = dnabert_s_partner(esm_file, esm_dir, dnabert_s_dir)
            message = f"{esm_file} has no DNABERT-S partner {partner}"
            log.log(logging.WARNING if allow_missing else logging.ERROR, "%s", message)
            outcomes.append(MergeOutcome(None, unpaired_status, message, None, esm_file))
    return outcomes


def _merge_pair(
    dnabert_file: Path,
    esm_file: Path,
    output: Path,
    model: MergeModel,
    labels: list[int] | None,
    options: dict,
    overwrite: bool,
    redo_stale: bool,
) -> MergeOutcome:
    """One pair: its ESM side judged, then the merged file skipped, kept as stale, or
    (re)written."""
    width, actual = model.width, esm_width(esm_file)
    side = judge(
        esm_file,
        MergeInputBasis(
            model_key=model.model_key, model_name=model.name, width=width, actual_width=actual
        ),
    )
    if side.verdict == Verdict.STALE:
        message = f"{esm_file} is stale: {side.reason}; re-extract it (extract --redo-stale)"
        if made_here(output):  # this tool's merge of earlier inputs: out of date, removed
            message += _set_aside(output)
        log.warning("%s; %s not merged", message, output.name)
        return MergeOutcome(output, STALE, message, dnabert_file, esm_file, stale_input=True)
    if side.verdict == REBUILD:
        raise MergeError(f"{esm_file}: {side.reason}")
    if width is not None and actual != width:
        raise MergeError(
            f"{esm_file}: {actual}-dim ESM embeddings{model_hint(actual or 0)}, but this merge "
            f"is {width}-dim ({model.name}); re-extract it, or give --expect-dim"
        )
    merge = functools.cache(
        lambda: merge_embeddings(dnabert_file, esm_file, expect_dim=width, **options)
    )
    basis = MergedBasis(
        dnabert_s=dnabert_file, esm=esm_file, labels=labels, merge=merge, overwrite=overwrite
    )
    verdict = judge(output, basis)
    if verdict.verdict == CURRENT:
        if verdict.reason:  # an old merged file equal to its inputs' merge: adopt it
            write_merged_manifest(output, dnabert_file, esm_file, merge())
        return MergeOutcome(output, SKIPPED, verdict.reason or "current", dnabert_file, esm_file)
    if verdict.verdict == Verdict.STALE and not redo_stale:
        log.warning(
            "%s is stale: %s: kept; --redo-stale rebuilds it, --accept-stale accepts it",
            output,
            verdict.reason,
        )
        return MergeOutcome(output, STALE, verdict.reason, dnabert_file, esm_file)
    rebuilt = verdict.reason if output.exists() and not overwrite else ""
    result = merge()
    write_merge(output, dnabert_file, esm_file, result)
    if rebuilt:
        log.warning("%s was rebuilt: %s", output, rebuilt)
    return MergeOutcome(
        output, WRITTEN, "", dnabert_file, esm_file, len(result.ids), rebuilt_because=rebuilt
    )


@dataclass(frozen=True)
class MergeOutcome:
    """What happened to one pair (or unpaired file) of a folder merge."""

    output: Path | None
    status: Status  # WRITTEN, SKIPPED, STALE or FAILED
    message: str = ""
    dnabert_s: Path | None = None
    esm: Path | None = None
    n_rows: int = 0
    rebuilt_because: str = ""  # WRITTEN over an existing merged file: why
    stale_input: bool = False  # STALE: its ESM input is another model's, so it was not merged
