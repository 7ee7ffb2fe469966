"""What an audit reads: the outputs under its paths, each with its manifest, its input and
the record each stored row was made from; refused as a usage error (exit 2) when the
manifests cannot say what to compare with (none, unfinished, several models or truncations).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastesm_extract.disk.currency import other_output
from fastesm_extract.disk.fasta import ProteinRecord, read_fasta
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest import ManifestError, file_identity, is_complete, load_manifest
from fastesm_extract.disk.manifest_schema import Manifest
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.disk.verify import fasta_beside, find_outputs
from fastesm_extract.errors import FastaError, OutputError, UsageError
from fastesm_extract.extract.prepare import refuse_nucleotide_records, refuse_unknown_letters
from fastesm_extract.model.tokens import EsmAlphabet


@dataclass(frozen=True)
class AuditedOutput:
    """One output and its manifest; after `read`, its rows and the record of each row (or
    the problems that keep it from being audited)."""

    output: Path
    manifest: Manifest
    fasta: Path | None = None
    records: list[ProteinRecord] = field(default_factory=list)  # one per stored row
    data: list[torch.Tensor] = field(default_factory=list)
    problems: tuple[str, ...] = ()

    def read(self, alphabet: EsmAlphabet) -> AuditedOutput:
        """The output loaded, checked against its manifest and matched with its input."""
        try:
            return self._read(alphabet)
        except (OutputError, FastaError, OSError) as error:
            return dataclasses.replace(self, problems=(str(error),))

    def _read(self, alphabet: EsmAlphabet) -> AuditedOutput:
        def problem(text: str, fasta: Path | None = None) -> AuditedOutput:
            return dataclasses.replace(self, fasta=fasta, problems=(text,))

        proteins, data = load_embeddings(self.output)
        identity = file_identity(self.output)
        if other := other_output(self.manifest, identity["size"], identity["sha256"], len(data)):
            return problem(f"{other}: run verify, rerun extract")
        recorded = Path(self.manifest.input.absolute_path or "")
        fasta = recorded if recorded.is_file() else fasta_beside(self.output)
        if fasta is None:
            return problem(f"its input {recorded} is not found (moved?)")
        contents = read_fasta(fasta)
        if contents.sha256 != self.manifest.input.sha256:
            return problem(f"its input {fasta} changed since it was made: rerun extract", fasta)
        # The records a run embeds, in FASTA order; the output holds them less failed ones.
        usable = refuse_unknown_letters(refuse_nucleotide_records(contents), alphabet).records
        records = rows_of(proteins, usable)
        if records is None:
            return problem(f"its IDs do not follow {fasta}: run verify", fasta)
        return dataclasses.replace(self, fasta=fasta, records=records, data=data)


def rows_of(
    proteins: Sequence[str], records: Sequence[ProteinRecord]
) -> list[ProteinRecord] | None:
    """The record each stored row was made from (rows are records in FASTA order, some left
    out); None when the IDs do not follow the records."""
    remaining = iter(records)
    matched = []
    for protein in proteins:
        record = next((r for r in remaining if r.id == protein), None)
        if record is None:
            return None
        matched.append(record)
    return matched


def _model_key(manifest: Manifest) -> tuple:
    model = manifest.model  # a local folder is its files' fingerprint, a hub model its commit
    where = model.fingerprint or model.local_path or model.id
    return where, model.commit_hash or model.revision, model.hidden_size


def audited_outputs(paths: Sequence[str | Path]) -> list[AuditedOutput]:
    """The outputs under `paths` with their complete manifests, all of one model and one
    truncation length; `UsageError` otherwise."""
    outputs = find_outputs(list(paths))
    if not outputs:
        raise UsageError("no _ESM.pt files found in " + ", ".join(map(str, paths)))
    found, unusable = [], []
    for output in outputs:
        try:
            manifest = load_manifest(output)
        except ManifestError as error:
            unusable.append(str(error))
            continue
        if manifest is None or not is_complete(manifest):
            state = "no manifest" if manifest is None else f"a {manifest.state} manifest"
            unusable.append(f"{output} has {state}")
        elif manifest.truncation_seq_length is None or not manifest.model.id:
            unusable.append(f"{output}: its manifest does not name its model and truncation")
        else:
            found.append(AuditedOutput(output, manifest))
    if unusable:
        raise UsageError(
            "the audit takes its input and model from each output's manifest, and cannot use: "
            + "; ".join(unusable[:5])
            + (f" (and {len(unusable) - 5} more)" if len(unusable) > 5 else "")
            + " (outputs of the original pipeline, or unfinished: leave them out)"
        )
    _refuse_mixtures(found)
    return found


def _refuse_mixtures(found: list[AuditedOutput]) -> None:
    first = found[0]
    for item in found[1:]:
        if _model_key(item.manifest) != _model_key(first.manifest):
            raise UsageError(
                f"{first.output} and {item.output} were made by different models "
                f"({first.manifest.model.id!r}, {item.manifest.model.id!r}): the model loads "
                "once, audit each model's outputs separately"
            )
        if item.manifest.truncation_seq_length != first.manifest.truncation_seq_length:
            raise UsageError(
                f"{first.output} and {item.output} were made with different truncation "
                f"lengths ({first.manifest.truncation_seq_length}, "
                f"{item.manifest.truncation_seq_length}): audit them separately"
            )


def files_read(paths: Sequence[str | Path]) -> list[Path]:
    """Every file an audit of `paths` reads (outputs, manifests, the inputs they record):
    what its `--summary-json` must not be."""
    files = []
    for output in find_outputs(list(paths)):
        files += [output, manifest_path(output)]
        try:
            manifest = load_manifest(output)
        except ManifestError:
            continue
        if manifest is not None and manifest.input.absolute_path:
            files.append(Path(manifest.input.absolute_path))
    return files


def model_named_by(found: list[AuditedOutput]) -> tuple[str, str | None]:
    """(model ID or folder, revision) the manifests name: the folder recorded when it is
    still there (a relative ID was relative to where the run was), the commit loaded."""
    model = found[0].manifest.model
    where = model.local_path if model.local_path and Path(model.local_path).is_dir() else None
    return where or model.id or "", model.commit_hash or model.revision
