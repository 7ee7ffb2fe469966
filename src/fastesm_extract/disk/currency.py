"""Is an output current? The one rule every entry point applies (extract, merge, plan).

An output is *current* when it was made from this input content, this model (ID, revision,
hidden size) and this truncation length. Batch budget, device, dtype and worker count change
no embedding beyond numerical noise: they are recorded, never a reason to call an output
stale. What differs decides what a run does:

- the input content changed -> the output describes data that no longer exists: rebuilt;
- another model or truncation -> stale: kept (never destroyed silently), reported, and the
  run exits 1 until `--redo-stale` rebuilds it or `--accept-stale` accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.manifest_schema import Manifest, ManifestModel


@dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """What an output's embeddings depend on, besides its input."""

    model_id: str
    revision: str | None = None
    commit_hash: str | None = None
    hidden_size: int
    truncation_seq_length: int


def local_model_path(model_id: str) -> str | None:
    """The absolute folder of a local checkpoint (so `ckpt` and `./ckpt` are one model)."""
    path = Path(model_id).expanduser()
    return str(path.resolve()) if path.is_dir() else None


def _same_model_id(model: ManifestModel, identity: ModelIdentity) -> bool:
    if model.id == identity.model_id:
        return True
    here = local_model_path(identity.model_id)
    return here is not None and model.local_path == here


def model_differences(manifest: Manifest, identity: ModelIdentity) -> list[str]:
    """Why an output with `manifest` was made by another model or truncation; empty when the
    same (the reasons an output is stale)."""
    reasons = []
    model = manifest.model
    if not _same_model_id(model, identity):
        reasons.append(f"model {model.id!r} != {identity.model_id!r}")
    if model.commit_hash and identity.commit_hash:
        if model.commit_hash != identity.commit_hash:
            reasons.append(f"model commit {model.commit_hash[:12]} != {identity.commit_hash[:12]}")
    elif model.revision and identity.revision and model.revision != identity.revision:
        reasons.append(f"model revision {model.revision!r} != {identity.revision!r}")
    if model.hidden_size is not None and model.hidden_size != identity.hidden_size:
        reasons.append(f"hidden size {model.hidden_size} != {identity.hidden_size}")
    length = manifest.truncation_seq_length
    if length is not None and length != identity.truncation_seq_length:
        reasons.append(f"truncation_seq_length {length} != {identity.truncation_seq_length}")
    return reasons


def input_changed(manifest: Manifest, input_sha256: str) -> bool:
    return manifest.input.sha256 != input_sha256


def other_output(manifest: Manifest, output_size: int, output_sha256: str, n_records: int) -> str:
    """Why the output on disk is not the one `manifest` describes (copied or moved over
    it); empty when it is."""
    recorded = manifest.output
    if recorded is not None:
        if recorded.size != output_size or recorded.sha256 != output_sha256:
            return "it is not the output its manifest describes (replaced or copied over)"
        return ""
    embedded = manifest.records.embedded
    if embedded is not None and embedded != n_records:
        return f"it holds {n_records} records, its manifest says {embedded} (replaced?)"
    return ""
