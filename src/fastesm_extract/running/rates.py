"""Recent extraction rates, so that `plan` can estimate how long a run will take.

After a run that embedded records, its rate (records per second, model load included) is
kept per model and device in a small JSON file: `$FASTESM_EXTRACT_CACHE/rates.json`, else
`$XDG_CACHE_HOME/fastesm-extract/rates.json`, else `~/.cache/fastesm-extract/rates.json`.
Best effort: a file that cannot be read or written only means no estimate.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from fastesm_extract.disk.manifest import device_name, utc_now
from fastesm_extract.disk.store import atomic_write
from fastesm_extract.model.identity import ModelIdentity
from fastesm_extract.settings import cache_folder

log = logging.getLogger("fastesm_extract")

# The most records a known rate counts for when a new run is averaged in: later runs still
# move it (a new driver, another node of the same name).
_WEIGHT_CAP = 100_000


def rates_path() -> Path:
    return cache_folder() / "rates.json"


def device_label(devices: tuple[str, ...] | list[str]) -> str:
    """`cpu (x86_64)`, `NVIDIA H200`, or `2 x NVIDIA H200` for several workers."""
    try:
        names = [device_name(torch.device(device)) for device in devices]
    except (RuntimeError, AssertionError):  # CUDA named but not usable here
        names = list(devices)
    return names[0] if len(names) == 1 else f"{len(names)} x {names[0]}"


@dataclass(frozen=True)
class KnownRate:
    records_per_s: float
    measured: str  # UTC time of the run it comes from


def rate_model(identity: ModelIdentity | None, name: str) -> str:
    """The model a rate belongs to, not its spelling: a local folder by its files'
    fingerprint (a relative and an absolute path to one checkpoint share a rate, unrelated
    folders of one relative name do not); a hub model by its ID."""
    if identity is not None and identity.fingerprint:
        return f"files:{identity.fingerprint[:16]}"
    return name


def _key(model_id: str, device: str) -> str:
    return f"{model_id} @ {device}"


def _read() -> dict:
    try:
        content = json.loads(rates_path().read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def record_rate(model_id: str, device: str, records: int, seconds: float) -> None:
    """Remember the rate of a run that embedded `records` in `seconds`: the mean of this rate
    and the one known, weighted by their records (the known one's up to `_WEIGHT_CAP`), so a
    one-record run, mostly the model's load, barely moves a rate measured on thousands."""
    if records <= 0 or seconds <= 0:
        return
    rates = _read()
    key = _key(model_id, device)
    rate, weight = records / seconds, records
    if (known := known_rate(model_id, device)) is not None:
        known_weight = min(_records_of(rates[key]), _WEIGHT_CAP)
        weight = records + known_weight
        rate = (rate * records + known.records_per_s * known_weight) / weight
    rates[key] = {"records_per_s": rate, "records": weight, "measured": utc_now()}
    try:
        text = json.dumps(rates, indent=2).encode() + b"\n"
        atomic_write(rates_path(), lambda handle: handle.write(text))
    except OSError as error:
        log.debug("cannot record the run's rate in %s: %s", rates_path(), error)


def _records_of(entry: dict) -> int:
    """The records a known rate stands for (0 for a rate written before they were kept)."""
    try:
        records = int(entry.get("records", 0))
    except (TypeError, ValueError):
        return 0
    return max(records, 0)


def known_rate(model_id: str, device: str) -> KnownRate | None:
    """The rate known for this model on this device; None when there is none, or it is not
    a positive finite number (a damaged or hand-edited file: ignored, never divided by)."""
    entry = _read().get(_key(model_id, device))
    try:
        rate = KnownRate(float(entry["records_per_s"]), str(entry["measured"]))
    except (TypeError, KeyError, ValueError):
        return None
    return rate if math.isfinite(rate.records_per_s) and rate.records_per_s > 0 else None
