"""Recent extraction rates, so that `plan` can estimate how long a run will take.

After a run that embedded records, its rate (records per second, model load included) is
kept per model and device in a small JSON file: `$FASTESM_EXTRACT_CACHE/rates.json`, else
`$XDG_CACHE_HOME/fastesm-extract/rates.json`, else `~/.cache/fastesm-extract/rates.json`.
Best effort: a file that cannot be read or written only means no estimate.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from fastesm_extract.disk.manifest import device_name, utc_now
from fastesm_extract.disk.store import atomic_write

log = logging.getLogger("fastesm_extract")


def rates_path() -> Path:
    if folder := os.environ.get("FASTESM_EXTRACT_CACHE"):
        return Path(folder) / "rates.json"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fastesm-extract" / "rates.json"


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


def _key(model_id: str, device: str) -> str:
    return f"{model_id} @ {device}"


def _read() -> dict:
    try:
        content = json.loads(rates_path().read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def record_rate(model_id: str, device: str, records: int, seconds: float) -> None:
    """Remember the rate of a run that embedded `records` in `seconds`."""
    if records <= 0 or seconds <= 0:
        return
    rates = _read()
    rates[_key(model_id, device)] = {"records_per_s": records / seconds, "measured": utc_now()}
    try:
        text = json.dumps(rates, indent=2).encode() + b"\n"
        atomic_write(rates_path(), lambda handle: handle.write(text))
    except OSError as error:
        log.debug("cannot record the run's rate in %s: %s", rates_path(), error)


def known_rate(model_id: str, device: str) -> KnownRate | None:
    entry = _read().get(_key(model_id, device))
    try:
        return KnownRate(float(entry["records_per_s"]), str(entry["measured"]))
    except (TypeError, KeyError, ValueError):
        return None
