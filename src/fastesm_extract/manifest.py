"""Provenance manifests: `<output>.json` beside each `_ESM.pt`, and staleness checks (issue 4).

A manifest records what an output was computed from (input bytes, model, settings, versions)
so that a resumed run can tell a finished output from a stale one.

An output and its manifest are one unit: a "pending" manifest is written before the output
is replaced and the complete one after it, so a kill (or full disk) at any instant leaves
either the previous unit or an output whose manifest says it was never completed, which a
later run rebuilds. Outputs without any manifest (the original pipeline's) stay accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from .failures import RecordFailure
from .layout import manifest_path
from .model import LoadedModel
from .store import atomic_write, save_embeddings_atomic

FORMAT_VERSION = 1
PENDING, COMPLETE = "pending", "complete"
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


@dataclass(frozen=True)
class Provenance:
    """What every manifest of a run shares: model, settings and software versions."""

    model_id: str
    revision: str | None
    commit_hash: str | None
    dtype: str
    device: str
    hidden_size: int
    truncation_seq_length: int
    toks_per_batch: int

    @classmethod
    def of(cls, loaded: LoadedModel, truncation_seq_length: int, toks_per_batch: int):
        return cls(
            model_id=loaded.model_id,
            revision=loaded.revision,
            commit_hash=loaded.commit_hash,
            dtype=str(loaded.dtype).removeprefix("torch."),
            device=device_name(loaded.device),
            hidden_size=loaded.hidden_size,
            truncation_seq_length=truncation_seq_length,
            toks_per_batch=toks_per_batch,
        )


def build_manifest(
    provenance: Provenance,
    input_path: Path,
    input_sha256: str,
    n_read: int,
    embedded: int,
    failures: list[RecordFailure],
    started: str,
) -> dict:
    """The complete manifest dictionary for one output (JSON-serializable)."""
    return {
        "format_version": FORMAT_VERSION,
        "state": COMPLETE,
        "input": {
            "path": str(input_path),
            "absolute_path": str(Path(input_path).resolve()),
            "size": Path(input_path).stat().st_size,
            "sha256": input_sha256,
        },
        "records": {
            "read": n_read,
            "embedded": embedded,
            "failed": len(failures),
            "failed_ids": [failure.record_id for failure in failures],
            "failed_kinds": [failure.kind for failure in failures],  # same order as the IDs
        },
        "model": {
            "id": provenance.model_id,
            "revision": provenance.revision,
            "commit_hash": provenance.commit_hash,
            "dtype": provenance.dtype,
            "device": provenance.device,
            "hidden_size": provenance.hidden_size,
        },
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


_TEXT, _NUMBER, _TEXT_OR_NONE, _TEXTS = "text", "integer", "text or null", "list of texts"
# The fields runs and `verify` read, with the type each must have when present; fields not
# listed are not read, so they may hold anything.
_FIELD_TYPES: dict[str, str | dict[str, str]] = {
    "format_version": _NUMBER,
    "state": _TEXT,
    "started": _TEXT,
    "finished": _TEXT,
    "input": {"path": _TEXT, "absolute_path": _TEXT, "size": _NUMBER, "sha256": _TEXT},
    "records": {
        "read": _NUMBER,
        "embedded": _NUMBER,
        "failed": _NUMBER,
        "failed_ids": _TEXTS,
        "failed_kinds": _TEXTS,
    },
    "model": {
        "id": _TEXT,
        "revision": _TEXT_OR_NONE,
        "commit_hash": _TEXT_OR_NONE,
        "dtype": _TEXT,
        "device": _TEXT,
        "hidden_size": _NUMBER,
    },
    "settings": {"truncation_seq_length": _NUMBER, "toks_per_batch": _NUMBER},
}


def _has_type(value: object, expected: str) -> bool:
    if expected == _NUMBER:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _TEXTS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, str) or (expected == _TEXT_OR_NONE and value is None)


def manifest_problems(content: object) -> list[str]:
    """Why `content` cannot be used as a manifest (fields of the wrong type); empty when usable."""
    if not isinstance(content, dict):
        return [f"a JSON {type(content).__name__}, not an object"]
    problems = []
    for key, expected in _FIELD_TYPES.items():
        if key not in content:
            continue
        value = content[key]
        if isinstance(expected, str):
            if not _has_type(value, expected):
                problems.append(f"{key!r} is {json.dumps(value)[:40]}, not {expected}")
        elif not isinstance(value, dict):
            problems.append(f"{key!r} is {json.dumps(value)[:40]}, not an object")
        else:
            problems += [
                f"'{key}.{field}' is {json.dumps(value[field])[:40]}, not {kind}"
                for field, kind in expected.items()
                if field in value and not _has_type(value[field], kind)
            ]
    return problems


def pending_manifest(started: str) -> dict:
    """Written before an output is replaced: "this output is being written, not finished"."""
    return {
        "format_version": FORMAT_VERSION,
        "state": PENDING,
        "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        "started": started,
    }


def is_complete(manifest: dict) -> bool:
    """False for a pending manifest: its output was never completed by this tool.

    Manifests from before the pending state existed were written after their output, so a
    manifest without a state is complete.
    """
    return manifest.get("state", COMPLETE) == COMPLETE


def save_output_and_manifest(
    output: str | Path, proteins: list[str], data: list[torch.Tensor], manifest: dict
) -> None:
    """Write an output and its manifest as one unit: pending manifest, output, manifest.

    Each step is atomic, so whatever instant a kill lands, the pair on disk is the previous
    unit, or an output with a pending manifest (rebuilt by the next run), or the new unit.
    """
    write_manifest(output, pending_manifest(manifest.get("started", utc_now())))
    try:
        save_embeddings_atomic(output, proteins, data)
    except BaseException:
        if not Path(output).exists():  # nothing written: nothing to mark as unfinished
            manifest_path(output).unlink(missing_ok=True)
        raise
    write_manifest(output, manifest)


def read_manifest(output: str | Path) -> dict | None:
    """The manifest of `output`, or None when there is none.

    Raises `ManifestError` (naming the file) when it exists but cannot be read or parsed, or
    a field that runs rely on has the wrong type.
    """
    path = manifest_path(output)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ManifestError(f"manifest {path} cannot be read: {error}") from error
    try:
        content = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ManifestError(f"manifest {path} is not valid JSON: {error}") from error
    problems = manifest_problems(content)
    if problems:
        raise ManifestError(f"manifest {path} is damaged: {'; '.join(problems[:3])}")
    return content


def stale_reasons(manifest: dict, provenance: Provenance, input_sha256: str) -> list[str]:
    """Why an output with `manifest` is not what this run would produce; empty when current."""
    reasons = []
    recorded_input = manifest.get("input", {}).get("sha256")
    if recorded_input != input_sha256:
        reasons.append("the input file changed")
    model = manifest.get("model", {})
    if model.get("id") != provenance.model_id:
        reasons.append(f"model {model.get('id')!r} != {provenance.model_id!r}")
    recorded_commit, commit = model.get("commit_hash"), provenance.commit_hash
    if recorded_commit and commit and recorded_commit != commit:
        reasons.append(f"model commit {recorded_commit[:12]} != {commit[:12]}")
    recorded_size = model.get("hidden_size")
    if recorded_size is not None and recorded_size != provenance.hidden_size:
        reasons.append(f"hidden size {recorded_size} != {provenance.hidden_size}")
    if model.get("dtype") != provenance.dtype:
        reasons.append(f"dtype {model.get('dtype')} != {provenance.dtype}")
    settings = manifest.get("settings", {})
    for name in ("truncation_seq_length", "toks_per_batch"):
        if settings.get(name) != getattr(provenance, name):
            reasons.append(f"{name} {settings.get(name)} != {getattr(provenance, name)}")
    return reasons
