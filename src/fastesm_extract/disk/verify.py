"""`fastesm-extract verify`: check `_ESM.pt` outputs against their FASTA and manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fastesm_extract.disk.currency import other_output
from fastesm_extract.disk.fasta import read_fasta
from fastesm_extract.disk.folders import files_under
from fastesm_extract.disk.layout import fasta_candidates, is_output_name
from fastesm_extract.disk.manifest import ManifestError, file_identity, is_complete, load_manifest
from fastesm_extract.disk.manifest_schema import Manifest
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.errors import FastaError, OutputError


@dataclass
class VerifyReport:
    """The verdict on one output: `problems` make it wrong, `notes` are for information."""

    output: Path
    fasta: Path | None = None
    n_records: int = 0
    hidden_size: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_outputs(paths: list[str | Path]) -> list[Path]:
    """Output files named directly, or found recursively under folders."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += [p for p in files_under(path) if is_output_name(p)]
        else:
            found.append(path)
    return found


def fasta_beside(output: Path) -> Path | None:
    """`x_ESM.pt` -> an existing `x.fa`/`.faa`/`.fasta` (optionally `.gz`) in the same folder."""
    return next((path for path in fasta_candidates(output) if path.is_file()), None)


def _is_subsequence(items: list[str], of: list[str]) -> bool:
    remaining = iter(of)
    return all(any(item == candidate for candidate in remaining) for item in items)


def _compare_ids(
    report: VerifyReport, proteins: list[str], fasta_ids: list[str], failed: list[str], manifest
) -> None:
    """The output's IDs against the FASTA's usable records, less those its manifest lists
    as failed (one record per listed ID, so a failed copy of a duplicated ID leaves the
    other in place)."""
    if manifest is None and Counter(proteins) == Counter(fasta_ids):
        if proteins != fasta_ids:  # the original VirNucPro pipeline writes in batch order
            report.notes.append("IDs match the FASTA but not its order (original pipeline order)")
        return
    missing = list((Counter(fasta_ids) - Counter(failed) - Counter(proteins)).elements())
    extra = list((Counter(proteins) - Counter(fasta_ids)).elements())
    if missing:
        report.problems.append(f"missing IDs: {', '.join(missing[:5])}")
    if extra:
        report.problems.append(f"IDs not in the FASTA: {', '.join(extra[:5])}")
    if not missing and not extra and not _is_subsequence(proteins, fasta_ids):
        report.problems.append("records are not in FASTA order")


def truncation_note(manifest: Manifest) -> str:
    """`N records truncated to L residues: id (full length), ...` from the manifest."""
    records = manifest.records
    named = list(zip(records.truncated_ids, records.truncated_lengths))
    shown = ", ".join(f"{record_id} ({length})" for record_id, length in named[:5])
    more = f" and {len(named) - 5} more (see the manifest)" if len(named) > 5 else ""
    return (
        f"{len(named)} records truncated to {manifest.truncation_seq_length} residues: "
        f"{shown}{more}"
    )


# ESM2 models are 320 to 5120 wide; far wider is a damaged or foreign file.
PLAUSIBLE_MAX_WIDTH = 16384


def verify_output(
    output: str | Path, fasta: str | Path | None = None, expected_dim: int | None = None
) -> VerifyReport:
    """Check one output: safe loading, format, dimension, finite values, IDs, count, order.

    Never raises for a damaged file: whatever is wrong is one of the report's problems.
    """
    report = VerifyReport(Path(output))
    try:
        _verify(report, fasta, expected_dim)
    except Exception as error:  # noqa: BLE001 - one odd file must not stop a folder's check
        report.problems.append(f"cannot be checked: {type(error).__name__}: {error}")
    return report


def _verify(report: VerifyReport, fasta: str | Path | None, expected_dim: int | None) -> None:
    try:
        proteins, data = load_embeddings(report.output, expected_dim)
    except OutputError as error:
        report.problems.append(str(error))
        return
    report.n_records = len(proteins)
    report.hidden_size = int(data[0].shape[0]) if data else expected_dim
    if not proteins:
        report.problems.append("holds no records")
    if expected_dim is None and (report.hidden_size or 0) > PLAUSIBLE_MAX_WIDTH:
        report.problems.append(
            f"implausible width {report.hidden_size} (ESM2 models are 320 to 5120 wide); "
            "give --expect-dim if it is meant"
        )
    try:
        manifest = load_manifest(report.output)
    except ManifestError as error:
        report.problems.append(str(error))
        manifest = None
    if manifest is not None and not is_complete(manifest):
        report.problems.append("never completed: its run was interrupted (rerun extract)")
        return
    if manifest is not None and manifest.records.truncated_ids:
        report.notes.append(truncation_note(manifest))
    if manifest is not None:  # the same test a run applies before it skips an output
        identity = file_identity(report.output)
        if other := other_output(manifest, identity["size"], identity["sha256"], len(proteins)):
            report.problems.append(f"{other}: rerun extract")
    if fasta is None and manifest is not None:
        recorded = Path(manifest.input.absolute_path or "")
        fasta = recorded if recorded.is_file() else None
    report.fasta = Path(fasta) if fasta is not None else fasta_beside(report.output)
    if report.fasta is None:
        report.notes.append("no FASTA found: IDs not checked (give --fasta)")
        return
    try:
        contents = read_fasta(report.fasta)
    except FastaError as error:
        report.problems.append(str(error))
        return
    failed: list[str] = []
    if manifest is not None:
        failed = list(manifest.records.failed_ids)
        if manifest.records.embedded != len(proteins):
            report.problems.append(
                f"manifest says {manifest.records.embedded} embedded, file has {len(proteins)}"
            )
        if manifest.input.sha256 != contents.sha256:
            report.problems.append("the FASTA changed since this output was made")
    _compare_ids(report, proteins, [record.id for record in contents.records], failed, manifest)
