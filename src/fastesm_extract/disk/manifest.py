"""Provenance manifests: `<output>.json` beside each `_ESM.pt` (what it was made from).

A manifest records what an output was computed from (input bytes, model, settings, versions)
and which output it describes (the output's own size and hash), so that a resumed run can
tell a current output from one made from other data (see `currency`).

An output and its manifest are one unit: a "pending" manifest is written before the output
is replaced and the complete one after it, so a kill (or full disk) at any instant leaves
either the previous unit or an output whose manifest says it was never completed, which a
later run rebuilds. Outputs without any manifest (the original pipeline's) stay accepted
when their IDs are their input's. A "failed" manifest without an output records a file none
of whose records is valid input, so that a rerun reports it without logging it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from fastesm_extract.disk.failures import RecordFailure
from fastesm_extract.disk.file_identity import unchanged_identity
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest_schema import InputRead, Manifest, manifest_problems
from fastesm_extract.disk.store import atomic_write, save_embeddings_atomic
from fastesm_extract.model.identity import ModelIdentity, module_fingerprint
from fastesm_extract.model.load import LoadedModel
from fastesm_extract.results import TruncatedRecord

FORMAT_VERSION = 1
PENDING, COMPLETE, FAILED_INPUT = "pending", "complete", "failed"
_HASH_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """What every manifest of a run shares: model, settings and software versions.

    Only `identity` decides whether an output is current; dtype, device and batch budget
    are recorded for the record (they change no embedding beyond numerical noise).
    """

    model_id: str
    revision: str | None
    commit_hash: str | None
    dtype: str
    device: str
    hidden_size: int
    truncation_seq_length: int
    toks_per_batch: int
    compiled: bool = False  # recorded only: never makes an output stale
    fingerprint: str | None = None  # a local folder's deciding files
    parameters: str | None = None  # the parameters' fingerprint, whatever the source
    in_memory: bool = False  # a module given in memory: known by its parameters
    local_path: str | None = None  # the checkpoint folder, recorded for the reader

    @classmethod
    def of(cls, loaded: LoadedModel, truncation_seq_length: int, toks_per_batch: int):
        identity = loaded.identity(truncation_seq_length)
        return cls(
            model_id=loaded.model_id,
            revision=loaded.revision,
            commit_hash=loaded.commit_hash,
            dtype=str(loaded.dtype).removeprefix("torch."),
            device=device_name(loaded.device),
            hidden_size=loaded.hidden_size,
            truncation_seq_length=truncation_seq_length,
            toks_per_batch=toks_per_batch,
            fingerprint=identity.fingerprint,
            parameters=identity.parameters or module_fingerprint(loaded.model),
            in_memory=identity.parameters is not None,
            local_path=str(loaded.folder) if loaded.folder else None,
        )

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(
            model_id=self.model_id,
            revision=self.revision,
            commit_hash=self.commit_hash,
            fingerprint=self.fingerprint,
            parameters=self.parameters if self.in_memory else None,
            hidden_size=self.hidden_size,
            truncation_seq_length=self.truncation_seq_length,
        )


def _model_section(provenance: Provenance) -> dict:
    return {
        "id": provenance.model_id,
        "revision": provenance.revision,
        "commit_hash": provenance.commit_hash,
        "local_path": provenance.local_path,
        "fingerprint": provenance.fingerprint,
        "parameters": provenance.parameters,
        "dtype": provenance.dtype,
        "device": provenance.device,
        "hidden_size": provenance.hidden_size,
        "compiled": provenance.compiled,  # torch.compile'd forward (forward.py)
    }


def build_manifest(
    provenance: Provenance,
    source: InputRead,
    n_read: int,
    embedded: int,
    failures: list[RecordFailure],
    started: str,
    truncated: Sequence[TruncatedRecord] = (),
    state: str = COMPLETE,
) -> dict:
    """The manifest dictionary for one output (JSON-serializable); `save_output_and_manifest`
    adds the output's own size and hash. `truncated` names the records cut to the
    truncation length, with their full lengths (which training rows were cut)."""
    return {
        "format_version": FORMAT_VERSION,
        "state": state,
        "input": source.as_manifest(),
        "records": {
            "read": n_read,
            "embedded": embedded,
            "failed": len(failures),
            "failed_ids": [failure.record_id for failure in failures],
            "failed_kinds": [str(failure.kind) for failure in failures],  # same order as IDs
            "truncated": len(truncated),
            "truncated_ids": [record.id for record in truncated],
            "truncated_lengths": [record.length for record in truncated],  # residues, in full
        },
        "model": _model_section(provenance),
        "settings": {
            "truncation_seq_length": provenance.truncation_seq_length,
            "toks_per_batch": provenance.toks_per_batch,
        },
        "versions": {
            "fastesm_extract": _version("fastesm-extract"),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "python": platform.python_version(),
        },
        "started": started,
        "finished": utc_now(),
    }


def write_manifest(output: str | Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    atomic_write(manifest_path(output), lambda handle: handle.write(text))


class ManifestError(Exception):
    """A manifest exists but cannot be used: unreadable, not JSON, or fields of the wrong type."""


def pending_manifest(started: str) -> dict:
    """Written before an output is replaced: "this output is being written, not finished"."""
    return {
        "format_version": FORMAT_VERSION,
        "state": PENDING,
        "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        "started": started,
    }


def is_complete(manifest: Manifest | dict) -> bool:
    """False for a pending (or failed) manifest: its output was never completed by this tool.

    Manifests from before the pending state existed were written after their output, so a
    manifest without a state is complete.
    """
    if isinstance(manifest, dict):  # the JSON as `read_manifest` gives it
        return manifest.get("state", COMPLETE) == COMPLETE
    return manifest.state == COMPLETE


def file_identity(path: str | Path) -> dict:
    """`{'size', 'sha256'}` of a file as it is on disk now."""
    return {"size": os.stat(path).st_size, "sha256": sha256_of(path)}


def save_output_and_manifest(
    output: str | Path, proteins: list[str], data: list[torch.Tensor], manifest: dict
) -> None:
    """Write an output and its manifest as one unit: pending manifest, output, manifest.

    Each step is atomic, so whatever instant a kill lands, the pair on disk is the previous
    unit, or an output with a pending manifest (rebuilt by the next run), or the new unit.
    The manifest names the output it describes by size and hash, so an output copied or
    moved over this one is not taken for it.
    """
    write_manifest(output, pending_manifest(manifest.get("started", utc_now())))
    try:
        save_embeddings_atomic(output, proteins, data)
    except BaseException:
        if not Path(output).exists():  # nothing written: nothing to mark as unfinished
            manifest_path(output).unlink(missing_ok=True)
        raise
    before = os.stat(output)  # its identity, kept only if unchanged while it was hashed
    described = file_identity(output) | unchanged_identity(before, os.stat(output))
    write_manifest(output, {**manifest, "output": described})


def read_manifest_json(output: str | Path) -> object | None:
    """The parsed JSON beside `output` (an extract output's or a merged file's manifest), or
    None when there is none; `ManifestError` (naming the file) when it cannot be read or
    parsed."""
    path = manifest_path(output)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ManifestError(f"manifest {path} cannot be read: {error}") from error
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ManifestError(f"manifest {path} is not valid JSON: {error}") from error


def read_manifest(output: str | Path) -> dict | None:
    """The manifest of `output`, or None when there is none.

    Raises `ManifestError` (naming the file) when it exists but cannot be read or parsed, or
    a field that runs rely on has the wrong type.
    """
    content = read_manifest_json(output)
    if content is None:
        return None
    path = manifest_path(output)
    problems = manifest_problems(content)
    if problems:
        raise ManifestError(f"manifest {path} is damaged: {'; '.join(problems[:3])}")
    return content


def load_manifest(output: str | Path) -> Manifest | None:
    """The typed manifest of `output` (see `read_manifest`; same errors), or None."""
    content = read_manifest(output)
    return None if content is None else Manifest.from_json(content)
