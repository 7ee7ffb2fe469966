"""`audit`: re-embed a sample of each output's records one at a time, without padding, in
float32, and compare with the rows stored: proof, on the user's own data, model and device,
that the batched features are what the model gives one sequence at a time.

Each output's input and model come from its manifest; the model loads once (the one the
manifests name unless another is given, which must be the same model). Each sampled record
goes through the same forward seam as extraction (`forward.Forward`, mean over residues),
as a batch of one; with `reference="esm"` also through transformers' own `EsmModel` with the
same weights (`model/reference.py`), so a bug shared by the checkpoint's batched and single
paths shows too. Loading the outputs is `audit_manifests.py`'s job.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastesm_extract.disk.currency import model_differences
from fastesm_extract.disk.fasta import ProteinRecord
from fastesm_extract.errors import UsageError
from fastesm_extract.extract.batching import collate
from fastesm_extract.extract.forward import Forward
from fastesm_extract.model.load import LoadedModel, load_model
from fastesm_extract.model.reference import REFERENCES, load_esm_reference
from fastesm_extract.running.audit_inputs import AuditedOutput, audited_outputs, model_named_by
from fastesm_extract.settings import DEFAULT_DEVICE

DEFAULT_SAMPLE = 32
DEFAULT_MIN_COSINE = 0.9999  # float16 extraction against float32 one at a time: ~0.99999+
MODEL = "model"  # what a row is compared with: the model itself, or a `REFERENCES` name


@dataclass(frozen=True)
class RowCheck:
    """One stored row against one record re-embedded alone."""

    record_id: str
    row: int  # index in the output's `proteins` / `data`
    against: str  # MODEL or a reference ("esm")
    cosine: float
    max_abs_diff: float
    within: bool  # cosine >= the audit's minimum


@dataclass
class FileAudit:
    """The audit of one output: its checks, and problems that kept it from being audited."""

    output: Path
    fasta: Path | None = None
    checks: list[RowCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(check.within for check in self.checks)

    @property
    def n_checked(self) -> int:
        return len({check.row for check in self.checks})

    @property
    def beyond(self) -> list[RowCheck]:
        """The checks beyond tolerance, in row order."""
        return [check for check in self.checks if not check.within]

    def min_cosine(self, against: str = MODEL) -> float | None:
        values = [c.cosine for c in self.checks if c.against == against]
        return min(values, key=_nan_first) if values else None

    def max_abs_diff(self, against: str = MODEL) -> float | None:
        values = [c.max_abs_diff for c in self.checks if c.against == against]
        return max(values, key=lambda v: math.inf if math.isnan(v) else v) if values else None


def _nan_first(value: float) -> float:
    return -math.inf if math.isnan(value) else value


@dataclass
class AuditReport:
    """Every output's audit; `exit_status` 0 when every sampled row is within tolerance."""

    files: list[FileAudit]
    model_id: str
    min_cosine: float
    sample: int
    seed: int
    reference: str | None = None

    @property
    def ok(self) -> bool:
        return all(audit.ok for audit in self.files)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        """JSON-ready (`--summary-json`); non-finite numbers are null."""
        against = [MODEL, *([self.reference] if self.reference else [])]
        return {
            "ok": self.ok,
            "exit_status": self.exit_status,
            "model": self.model_id,
            "reference": self.reference,
            "min_cosine": self.min_cosine,
            "sample": self.sample,
            "seed": self.seed,
            "files": [_file_entry(audit, against) for audit in self.files],
        }


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _file_entry(audit: FileAudit, against: list[str]) -> dict:
    return {
        "output": str(audit.output),
        "input": str(audit.fasta) if audit.fasta else None,
        "ok": audit.ok,
        "records_checked": audit.n_checked,
        **{
            name: {
                "min_cosine": _number(audit.min_cosine(name)),
                "max_abs_diff": _number(audit.max_abs_diff(name)),
            }
            for name in against
        },
        "beyond": [
            {
                "id": c.record_id,
                "row": c.row,
                "against": c.against,
                "cosine": _number(c.cosine),
                "max_abs_diff": _number(c.max_abs_diff),
            }
            for c in audit.beyond
        ],
        "problems": audit.problems,
    }


def sample_rows(lengths: Sequence[int], sample: int, seed: int) -> list[int]:
    """`sample` row indices, deterministic for `seed`, always holding the longest record
    (the first of the longest), in row order; every row when there are no more."""
    if sample >= len(lengths):
        return list(range(len(lengths)))
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    others = [row for row in range(len(lengths)) if row != longest]
    return sorted([longest, *random.Random(seed).sample(others, sample - 1)])


def compare(stored: torch.Tensor, fresh: torch.Tensor) -> tuple[float, float]:
    """(cosine, max abs difference) of two (hidden,) embeddings, in float64."""
    a, b = stored.double(), fresh.double()
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return cosine, float((a - b).abs().max())


def embed_alone(forward: Forward, record: ProteinRecord, truncation: int) -> torch.Tensor:
    """(hidden,) float32 on the CPU: the record as a batch of one (no padding)."""
    alphabet = forward.loaded.alphabet
    tokens = alphabet.encode([record.sequence], truncation)
    return forward(collate(alphabet, tokens, [0]))[0].cpu()


def audit_file(
    item: AuditedOutput,
    forwards: dict[str, Forward],
    sample: int,
    seed: int,
    min_cosine: float,
) -> FileAudit:
    """Re-embed `sample` of the output's records and compare each with its stored row."""
    audit = FileAudit(item.output, item.fasta, problems=list(item.problems))
    if audit.problems:
        return audit
    truncation = item.manifest.truncation_seq_length
    assert truncation is not None  # audited_outputs refuses manifests without it
    lengths = [len(record.sequence) for record in item.records]
    for row in sample_rows(lengths, sample, seed):
        record = item.records[row]
        for against, forward in forwards.items():
            cosine, difference = compare(item.data[row], embed_alone(forward, record, truncation))
            within = cosine >= min_cosine  # False for NaN
            audit.checks.append(RowCheck(record.id, row, against, cosine, difference, within))
    return audit


def audit_outputs(
    paths: Sequence[str | Path],
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    model: str | LoadedModel | None = None,
    device: str = DEFAULT_DEVICE,
    min_cosine: float = DEFAULT_MIN_COSINE,
    reference: str | None = None,
) -> AuditReport:
    """Audit the `_ESM.pt` outputs named or found under `paths` (see the module notes).

    `model`: a hub ID or folder (loaded in float32 on `device`), or a `LoadedModel`; by
    default the model their manifests name. Raises `UsageError` (exit 2) when nothing can
    be audited as asked: no outputs, outputs without manifest, outputs of several models or
    truncation lengths, another model than theirs, or a reference that does not map.
    """
    if sample < 1:
        raise UsageError(f"--sample must be at least 1, not {sample}")
    if not 0.0 <= min_cosine <= 1.0:
        raise UsageError(f"--min-cosine must be between 0 and 1, not {min_cosine}")
    if reference is not None and reference not in REFERENCES:
        raise UsageError(f"unknown reference {reference!r}: use {', '.join(REFERENCES)}")
    manifests = audited_outputs(paths)
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        model_id, revision = (model, None) if model else model_named_by(manifests)
        loaded = load_model(model_id, revision=revision, device=device, dtype="float32")
    refuse_another_model(manifests, loaded)
    forwards = {MODEL: Forward(loaded)}
    if reference is not None:
        forwards[reference] = Forward(load_esm_reference(loaded))
    files = [
        audit_file(item.read(loaded.alphabet), forwards, sample, seed, min_cosine)
        for item in manifests
    ]
    return AuditReport(files, loaded.model_id, min_cosine, sample, seed, reference)


def refuse_another_model(outputs: list[AuditedOutput], loaded: LoadedModel) -> None:
    """`UsageError` unless `loaded` is the model (and width) that made every output."""
    for item in outputs:
        # The output's own truncation: the audit re-embeds with it, so only the model counts.
        identity = loaded.identity(item.manifest.truncation_seq_length or 0)
        if reasons := model_differences(item.manifest, identity):
            raise UsageError(
                f"{item.output} was made by another model ({'; '.join(reasons)}): an audit "
                "compares outputs with the model that made them; leave out --model to use it"
            )
