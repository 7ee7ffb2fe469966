"""A manifest as runs and `verify` read it: the type each field must have, and `Manifest`,
the typed view built from its JSON (`Manifest.from_json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from fastesm_extract.disk.file_identity import IDENTITY_FIELDS

_TEXT, _NUMBER, _TEXT_OR_NONE, _TEXTS = "text", "integer", "text or null", "list of texts"
_NUMBERS = "list of integers"
# The fields runs and `verify` read, with the type each must have when present; fields not
# listed are not read, so they may hold anything.
_FIELD_TYPES: dict[str, str | dict[str, str]] = {
    "format_version": _NUMBER,
    "state": _TEXT,
    "started": _TEXT,
    "finished": _TEXT,
    "input": {
        "path": _TEXT,
        "absolute_path": _TEXT,
        "size": _NUMBER,
        "sha256": _TEXT,
        **dict.fromkeys(IDENTITY_FIELDS, _NUMBER),
    },
    "output": {"size": _NUMBER, "sha256": _TEXT, **dict.fromkeys(IDENTITY_FIELDS, _NUMBER)},
    "records": {
        "read": _NUMBER,
        "embedded": _NUMBER,
        "failed": _NUMBER,
        "failed_ids": _TEXTS,
        "failed_kinds": _TEXTS,
        "truncated": _NUMBER,
        "truncated_ids": _TEXTS,
        "truncated_lengths": _NUMBERS,
    },
    "model": {
        "id": _TEXT,
        "revision": _TEXT_OR_NONE,
        "commit_hash": _TEXT_OR_NONE,
        "dtype": _TEXT,
        "device": _TEXT,
        "hidden_size": _NUMBER,
        "local_path": _TEXT_OR_NONE,
        "fingerprint": _TEXT_OR_NONE,
        "parameters": _TEXT_OR_NONE,
    },
    "settings": {"truncation_seq_length": _NUMBER, "toks_per_batch": _NUMBER},
}


def _has_type(value: object, expected: str) -> bool:
    if expected == _NUMBER:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _TEXTS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if expected == _NUMBERS:
        return isinstance(value, list) and all(_has_type(item, _NUMBER) for item in value)
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


# ----------------------------------------------------------------- the typed view runs read
# A manifest's fields as typed values. Every field is optional: manifests of older versions
# (and the ones other tools wrote) lack some, and what is absent is None or empty here.


@dataclass(frozen=True, kw_only=True)
class ManifestFile:
    """A file a manifest names: its size and hash, and its stat identity when they were
    taken (absent in older manifests; file_identity.py)."""

    size: int | None = None
    sha256: str | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    inode: int | None = None
    device: int | None = None


@dataclass(frozen=True, kw_only=True)
class ManifestInput(ManifestFile):
    path: str | None = None
    absolute_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class ManifestOutput(ManifestFile):
    pass


@dataclass(frozen=True, kw_only=True)
class ManifestRecords:
    read: int | None = None
    embedded: int | None = None
    failed: int | None = None
    failed_ids: tuple[str, ...] = ()
    failed_kinds: tuple[str, ...] = ()  # same order as failed_ids (absent in old manifests)
    truncated_ids: tuple[str, ...] = ()  # records cut to the truncation length
    truncated_lengths: tuple[int, ...] = ()  # their full lengths, same order


@dataclass(frozen=True, kw_only=True)
class ManifestModel:
    id: str | None = None
    revision: str | None = None
    commit_hash: str | None = None
    local_path: str | None = None
    fingerprint: str | None = None
    parameters: str | None = None
    dtype: str | None = None
    device: str | None = None
    hidden_size: int | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A checked manifest (`Manifest.from_json`); `state` is "complete" when absent (written
    before the pending state existed, so after its output)."""

    state: str = "complete"
    input: ManifestInput = field(default_factory=ManifestInput)
    output: ManifestOutput | None = None  # absent before outputs were named by their hash
    records: ManifestRecords = field(default_factory=ManifestRecords)
    model: ManifestModel = field(default_factory=ManifestModel)
    truncation_seq_length: int | None = None
    toks_per_batch: int | None = None
    started: str | None = None
    finished: str | None = None

    @classmethod
    def from_json(cls, content: object) -> Manifest:
        """The typed manifest of parsed JSON; raises `ValueError` naming the fields of the
        wrong type (the caller names the file)."""
        if problems := manifest_problems(content):
            raise ValueError("; ".join(problems[:3]))
        assert isinstance(content, dict)

        def section(key: str) -> dict:
            return content.get(key) or {}

        records, settings = section("records"), section("settings")
        return cls(
            state=content.get("state", "complete"),
            input=ManifestInput(**_known(section("input"), ManifestInput)),
            output=ManifestOutput(**_known(content["output"], ManifestOutput))
            if isinstance(content.get("output"), dict)
            else None,
            records=ManifestRecords(
                read=records.get("read"),
                embedded=records.get("embedded"),
                failed=records.get("failed"),
                failed_ids=tuple(records.get("failed_ids") or ()),
                failed_kinds=tuple(records.get("failed_kinds") or ()),
                truncated_ids=tuple(records.get("truncated_ids") or ()),
                truncated_lengths=tuple(records.get("truncated_lengths") or ()),
            ),
            model=ManifestModel(**_known(section("model"), ManifestModel)),
            truncation_seq_length=settings.get("truncation_seq_length"),
            toks_per_batch=settings.get("toks_per_batch"),
            started=content.get("started"),
            finished=content.get("finished"),
        )


def _known(values: dict, kind: type) -> dict:
    """The entries of `values` that are fields of the dataclass `kind` (others are ignored)."""
    names = {item.name for item in fields(kind)}
    return {key: value for key, value in values.items() if key in names}


@dataclass(frozen=True)
class InputRead:
    """The input as it was parsed: its path, the size and hash of the bytes read, and the
    file's stat identity while they were (none when it changed meanwhile; file_identity.py)."""

    path: Path
    size: int
    sha256: str
    identity: dict = field(default_factory=dict)

    def as_manifest(self) -> dict:
        return {
            "path": str(self.path),
            "absolute_path": str(Path(self.path).resolve()),
            "size": self.size,
            "sha256": self.sha256,
            **self.identity,
        }
