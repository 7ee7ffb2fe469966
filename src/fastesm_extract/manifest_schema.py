"""The fields of a manifest that runs and `verify` read, and the type each must have."""

from __future__ import annotations

import json

_TEXT, _NUMBER, _TEXT_OR_NONE, _TEXTS = "text", "integer", "text or null", "list of texts"
# The fields runs and `verify` read, with the type each must have when present; fields not
# listed are not read, so they may hold anything.
_FIELD_TYPES: dict[str, str | dict[str, str]] = {
    "format_version": _NUMBER,
    "state": _TEXT,
    "started": _TEXT,
    "finished": _TEXT,
    "input": {"path": _TEXT, "absolute_path": _TEXT, "size": _NUMBER, "sha256": _TEXT},
    "output": {"size": _NUMBER, "sha256": _TEXT},
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
        "local_path": _TEXT_OR_NONE,
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
