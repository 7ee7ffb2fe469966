"""Is an output current? The one rule every entry point applies (extract, merge, plan).

An output is *current* when it was made from this input content, this model (a hub model's ID
and commit; a local folder's or in-memory module's fingerprint, see `model.identity`; its
hidden size) and this truncation length. Batch budget, device, dtype and worker count change
no embedding beyond numerical noise: they are recorded, never a reason to call an output
stale. What differs decides what a run does:

- the input content changed -> the output describes data that no longer exists: rebuilt;
- another model or truncation -> stale: kept (never destroyed silently), reported, and the
  run exits 1 until `--redo-stale` rebuilds it or `--accept-stale` accepts it.
"""

from __future__ import annotations

from fastesm_extract.disk.manifest_schema import Manifest, ManifestModel
from fastesm_extract.model.identity import ModelIdentity


def _model_differences(model: ManifestModel, identity: ModelIdentity) -> list[str]:
    """A local or in-memory model is its fingerprint (the same files anywhere are one model,
    other files under one name another); a module given in memory its parameters; a hub
    model its ID and commit."""
    if identity.parameters:
        if model.parameters == identity.parameters:
            return []
        return [
            f"model parameters differ: {model.id!r} != the module given ({identity.model_id!r})"
        ]
    if identity.fingerprint or model.fingerprint:
        if model.fingerprint == identity.fingerprint:
            return []
        if model.id != identity.model_id and model.local_path != str(identity.model_id):
            return [f"model {model.id!r} != {identity.model_id!r}"]
        if not model.fingerprint:
            return [f"model {model.id!r} was recorded by name only, not by its files"]
        if not identity.fingerprint:
            return [f"model {model.id!r} (local files) != {identity.model_id!r}"]
        return [
            f"model files differ: {model.id!r} ({model.fingerprint[:12]}) != "
            f"{identity.model_id!r} ({identity.fingerprint[:12]})"
        ]
    if model.id != identity.model_id:
        return [f"model {model.id!r} != {identity.model_id!r}"]
    if model.commit_hash and identity.commit_hash:
        if model.commit_hash != identity.commit_hash:
            return [f"model commit {model.commit_hash[:12]} != {identity.commit_hash[:12]}"]
    elif model.revision and identity.revision and model.revision != identity.revision:
        return [f"model revision {model.revision!r} != {identity.revision!r}"]
    return []


def manifest_model_key(model: ManifestModel) -> str:
    """The model an output's manifest names, as `ModelIdentity.key` names a model."""
    if model.fingerprint:
        return f"fingerprint:{model.fingerprint}"
    return f"{model.id}@{model.commit_hash or model.revision or ''}"


def model_differences(manifest: Manifest, identity: ModelIdentity) -> list[str]:
    """Why an output with `manifest` was made by another model or truncation; empty when the
    same (the reasons an output is stale)."""
    model = manifest.model
    reasons = _model_differences(model, identity)
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
