"""Where `--model` comes from: a local folder, the Hugging Face hub, or the hub's local cache
when the hub cannot be used (offline nodes), decided before anything is loaded.

Without this, an offline load of a hub ID retried for ~20 s and printed each retry twice,
and a mistyped relative folder (`demo/checkpoint` from the wrong place, which is also a valid
hub ID) was reported as a hub connection problem.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("fastesm_extract")

PROBE_TIMEOUT_S = 3.0  # one TCP connect to the hub; a firewall that drops packets costs this
PROBE_REUSE_S = 60.0  # a probe's answer holds this long
_probes: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when probed, reason)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class ModelSourceError(ValueError):
    """`--model` names nothing that can be loaded here; the message says what to do."""


@dataclass(frozen=True)
class ModelSource:
    """How to load a model: from the hub's cache only (while the hub cannot be used, with
    the commit the cache holds), or as usual (a folder, or the hub)."""

    local_files_only: bool
    cached_commit: str | None = None
    folder: bool = False  # a local checkpoint folder (its code may still name hub files)


def hub_offline_reason() -> str | None:
    """Why the hub cannot be used now: HF_HUB_OFFLINE set, or its endpoint unreachable."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None  # only the proxy knows: let the hub client try
    # One probe per endpoint and minute: a run asks twice (plan, then load), and a firewall
    # that drops packets would cost PROBE_TIMEOUT_S each time.
    probed_at, reason = _probes.get(constants.ENDPOINT, (float("-inf"), None))
    if time.monotonic() - probed_at < PROBE_REUSE_S:
        return reason
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=PROBE_TIMEOUT_S).close()
        reason = None
    except OSError as error:
        reason = f"the hub ({constants.ENDPOINT}) cannot be reached: {error.strerror or error}"
    _probes[constants.ENDPOINT] = (time.monotonic(), reason)
    return reason


def cached_commit(model_id: str, revision: str | None) -> str | None:
    """The commit of `model_id` at `revision` (default: main) in the local hub cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed cache is as good as none
        return None
    if not isinstance(found, str):
        return None
    commit = Path(found).parent.name  # .../snapshots/<commit>/config.json
    return commit if _COMMIT.fullmatch(commit) else None


def _no_folder(model_id: str) -> str:
    where = Path(model_id).expanduser().absolute()
    return f"no such folder (no local folder {where}; relative paths start at {Path.cwd()})"


def locate_model(model_id: str, revision: str | None) -> ModelSource:
    """Decide where `model_id` loads from, or raise `ModelSourceError` (one line) at once."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(model_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(
                f"cannot load model {model_id!r}: it is a file; give the local checkpoint folder"
            )
        return ModelSource(local_files_only=False, folder=True)
    try:
        validate_repo_id(model_id)
    except HFValidationError:
        raise ModelSourceError(
            f"cannot load model {model_id!r}: {_no_folder(model_id)}, and it is not a Hugging "
            "Face model ID like Synthyra/FastESM2_650; give an existing local checkpoint folder "
            "or a hub ID"
        ) from None
    reason = hub_offline_reason()
    if reason is None:
        return ModelSource(local_files_only=False)
    commit = cached_commit(model_id, revision)
    if commit is not None:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True  # as if set: no retries in the code that loads it
        log.info(
            "%s: loading %s from the local Hugging Face cache (commit %s)", reason, model_id, commit
        )
        return ModelSource(local_files_only=True, cached_commit=commit)
    # Both readings of the name, the folder first: `demo/checkpoint` run from the wrong
    # place is a valid hub ID too, and a hub connection problem would hide the real one.
    at = f" at revision {revision}" if revision else ""
    download = f"hf download {model_id}" + (f" --revision {revision}" if revision else "")
    raise ModelSourceError(
        f"cannot load model {model_id!r}: {_no_folder(model_id)}, and as a hub ID it is not "
        f"in the local Hugging Face cache{at} ({cache_folder()}) while {reason}. Give the "
        "checkpoint folder's path (absolute, or relative to where you run), or download the "
        f"model where there is internet (`{download}`, into the same HF_HOME) and rerun"
    )


def cache_folder() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_commit(model_id: str, revision: str | None) -> str | None:
    """The immutable commit `revision` of a hub model points to; None for local folders or
    when it cannot be known."""
    if Path(model_id).exists():
        return None
    try:
        from transformers.utils.hub import resolve_revision

        resolved = resolve_revision(model_id, revision)
    except Exception:  # noqa: BLE001 - best effort: provenance only, loading reports errors
        resolved = revision
    commit = getattr(resolved, "resolved", None) or resolved
    return commit if isinstance(commit, str) and _COMMIT.fullmatch(commit) else None
