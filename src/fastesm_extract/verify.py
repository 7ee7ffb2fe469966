"""`fastesm-extract verify`: check `_ESM.pt` outputs against their FASTA and manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .fasta import FastaError, read_fasta
from .folders import files_under
from .layout import fasta_candidates, is_output_name
from .manifest import ManifestError, is_complete, read_manifest
from .store import OutputError, load_embeddings


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


def _compare_ids(report: VerifyReport, proteins: list[str], expected: list[str], manifest) -> None:
    if proteins == expected:
        return
    if manifest is None and Counter(proteins) == Counter(expected):
        # The original VirNucPro pipeline writes records in batch (length) order.
        report.notes.append("IDs match the FASTA but not its order (original pipeline order)")
        return
    if len(proteins) != len(expected):
        report.problems.append(f"{len(proteins)} records, FASTA has {len(expected)} expected")
    missing = list((Counter(expected) - Counter(proteins)).elements())
    extra = list((Counter(proteins) - Counter(expected)).elements())
    if missing:
        report.problems.append(f"missing IDs: {', '.join(missing[:5])}")
    if extra:
        report.problems.append(f"IDs not in the FASTA: {', '.join(extra[:5])}")
    if not missing and not extra:
        report.problems.append("records are not in FASTA order")


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
    try:
        manifest = read_manifest(report.output)
    except ManifestError as error:
        report.problems.append(str(error))
        manifest = None
    if manifest is not None and not is_complete(manifest):
        report.problems.append("never completed: its run was interrupted (rerun extract)")
        return
    if fasta is None and manifest is not None:
        recorded = Path(manifest.get("input", {}).get("absolute_path", ""))
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
    failed: set[str] = set()
    if manifest is not None:
        records = manifest.get("records", {})
        failed = set(records.get("failed_ids", []))
        if records.get("embedded") != len(proteins):
            report.problems.append(
                f"manifest says {records.get('embedded')} embedded, file has {len(proteins)}"
            )
        if manifest.get("input", {}).get("sha256") != contents.sha256:
            report.problems.append("the FASTA changed since this output was made")
    expected = [record.id for record in contents.records if record.id not in failed]
    _compare_ids(report, proteins, expected, manifest)
