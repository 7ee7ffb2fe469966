"""What decides a model's numbers, built in one place: `ModelIdentity` and `identity_of`.

- A hub model is known by its ID and the commit loaded (hub files are content-addressed).
- A local checkpoint folder is known by a *fingerprint* of the files that decide its numbers
  (config, weights, tokenizer files and, for remote-code models, the model code): the same
  files anywhere give the same identity; other files under the same name give another. Each
  file's hash is cached by its stat identity (size, mtime, inode, ctime), so a rerun costs a
  `stat` per file, not a read of the weights.
- A module given in memory is known by a fingerprint of its parameters and buffers,
  computed once per module and parameter version. Every manifest records the parameters'
  fingerprint of the model that made it, so a module loaded from the same files and given
  in memory finds the outputs a run by name made current.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from fastesm_extract.settings import cache_folder

log = logging.getLogger("fastesm_extract")

# The files of a checkpoint folder that decide its numbers (README, licences and training
# logs do not).
_DECIDING = (
    "config.json",
    "*.safetensors",
    "*.bin",
    "*.index.json",
    "*.pt",
    "*.pth",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer*.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "*.model",
    "*.py",
)
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """What an output's embeddings depend on, besides its input."""

    model_id: str
    revision: str | None = None
    commit_hash: str | None = None
    fingerprint: str | None = None  # a local folder's deciding files
    parameters: str | None = None  # a module given in memory: its parameters' fingerprint
    hidden_size: int
    truncation_seq_length: int

    @property
    def key(self) -> str:
        """One string per model (not per truncation): fingerprint, else ID and commit."""
        if self.fingerprint:
            return f"fingerprint:{self.fingerprint}"
        return f"{self.model_id}@{self.commit_hash or self.revision or ''}"


def _cache_path() -> Path:
    return cache_folder() / "file-hashes.json"


def _stat_key(path: Path) -> str:
    stats = path.stat()
    return f"{stats.st_dev}:{stats.st_ino}:{stats.st_size}:{stats.st_mtime_ns}:{stats.st_ctime_ns}"


class _FileHashes:
    """sha256 of files, remembered by stat identity in a small JSON file (best effort)."""

    def __init__(self) -> None:
        self._known: dict[str, str] | None = None
        self._changed = False

    def _load(self) -> dict[str, str]:
        if self._known is None:
            try:
                content = json.loads(_cache_path().read_text())
                self._known = content if isinstance(content, dict) else {}
            except (OSError, ValueError):
                self._known = {}
        return self._known

    def sha256(self, path: Path) -> str:
        real = path.resolve()
        key = f"{real}|{_stat_key(real)}"
        known = self._load()
        if key not in known:
            digest = hashlib.sha256()
            with open(real, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            known[key] = digest.hexdigest()
            self._changed = True
        return known[key]

    def save(self) -> None:
        if not self._changed or self._known is None:
            return
        path = _cache_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self._known))
            os.replace(temporary, path)
            self._changed = False
        except OSError as error:
            log.debug("cannot remember file hashes in %s: %s", path, error)


_hashes = _FileHashes()


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the names and contents of the files of `folder` that decide its numbers."""
    folder = Path(folder)
    digest = hashlib.sha256()
    names = sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and any(fnmatch.fnmatch(entry.name, p) for p in _DECIDING)
    )
    for name in names:
        digest.update(f"{name}\0{_hashes.sha256(folder / name)}\n".encode())
    _hashes.save()
    return digest.hexdigest()


_module_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state_version(module: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is changed in place or replaced."""
    return tuple(
        (name, tensor._version, tensor.data_ptr(), tuple(tensor.shape))
        for name, tensor in module.state_dict(keep_vars=True).items()
    )


def module_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names, dtypes, shapes, values);
    computed again only after one of them changed."""
    version = _state_version(module)
    cached = _module_fingerprints.get(module)
    if cached is not None and cached[0] == version:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        values = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{values.dtype}\0{tuple(values.shape)}\n".encode())
        digest.update(values.view(torch.uint8).numpy().tobytes() if values.numel() else b"")
    fingerprint = digest.hexdigest()
    _module_fingerprints[module] = (version, fingerprint)
    return fingerprint


def local_folder(model_id: str) -> Path | None:
    """The checkpoint folder `model_id` names, when it names one."""
    path = Path(model_id).expanduser()
    return path.resolve() if path.is_dir() else None


def identity_of(
    model_id: str,
    *,
    hidden_size: int,
    truncation_seq_length: int,
    revision: str | None = None,
    commit_hash: str | None = None,
    folder: Path | None = None,
    module: torch.nn.Module | None = None,
) -> ModelIdentity:
    """The one way every part of the tool names a model: for a module given in memory its
    parameters' fingerprint; for a local folder (`folder`, or `model_id` naming one) its
    files'; for a hub ID the commit."""
    fingerprint = parameters = None
    if module is not None:
        parameters = module_fingerprint(module)
    elif (folder := folder or local_folder(model_id)) is not None:
        fingerprint = folder_fingerprint(folder)
    return ModelIdentity(
        model_id=model_id,
        revision=revision,
        commit_hash=commit_hash,
        fingerprint=fingerprint,
        parameters=parameters,
        hidden_size=hidden_size,
        truncation_seq_length=truncation_seq_length,
    )
