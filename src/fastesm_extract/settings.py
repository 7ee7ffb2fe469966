"""The plain settings of a run and their defaults: no model, no devices, no file system.

`config.py` resolves them (devices, environment shards, model, failure log) into a
`RunConfig`; the command line and the Python API take their defaults from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The original ESM2 settings (fair-esm's extract.py), the defaults of every entry point.
DEFAULT_TOKS_PER_BATCH = 2048
DEFAULT_TRUNCATION_SEQ_LENGTH = 1024
DEFAULT_DEVICE = "cuda"


@dataclass(frozen=True)
class ExtractionSettings:
    """How sequences are cut and grouped, and what a rerun does with existing outputs."""

    toks_per_batch: int = DEFAULT_TOKS_PER_BATCH
    truncation_seq_length: int = DEFAULT_TRUNCATION_SEQ_LENGTH
    overwrite: bool = False
    redo_stale: bool = False  # rebuild outputs whose manifest shows other inputs or settings
    accept_invalid: bool = False  # records failed for an input reason do not fail the run
    accept_stale: bool = False  # outputs of another model or truncation do not fail the run
    prefetch_files: int = 2  # files read and tokenized ahead of the device
    compile: bool = False  # torch.compile the forward (forward.py); outputs equal within 1e-5
    compile_cache: str | None = None  # folder for torch's compile caches (default: torch's)

    def __post_init__(self) -> None:
        if self.toks_per_batch < 1 or self.truncation_seq_length < 1:
            raise ValueError("toks_per_batch and truncation_seq_length must be positive")


# Locks not renewed for this long belong to a dead run on another host (see locks.py).
LOCK_STALE_AFTER_S_DEFAULT = 15 * 60
LOCK_STALE_VARIABLE = "FASTESM_EXTRACT_LOCK_STALE_S"


def lock_stale_after_s() -> float:
    """Seconds after which a lock nobody renewed is stale (`FASTESM_EXTRACT_LOCK_STALE_S`)."""
    return float(os.environ.get(LOCK_STALE_VARIABLE, LOCK_STALE_AFTER_S_DEFAULT))


__version__ = "0.1.0"


def cache_folder() -> Path:
    """Where the tool keeps what it measured or hashed between runs: FASTESM_EXTRACT_CACHE,
    else `$XDG_CACHE_HOME/fastesm-extract`, else `~/.cache/fastesm-extract`."""
    if folder := os.environ.get("FASTESM_EXTRACT_CACHE"):
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastesm-extract"
