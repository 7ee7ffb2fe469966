"""Batches that fail: CUDA out-of-memory splitting, and telling a bad batch from a dead device.

The forward pass itself (model + masked mean) is `forward.Forward`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from fastesm_extract.extract.batching import BatchInputs

log = logging.getLogger("fastesm_extract")

# Allocation failures that cuBLAS, cuDNN or SDPA raise as a plain RuntimeError instead of
# torch.cuda.OutOfMemoryError: splitting the batch helps them just as much.
_ALLOCATION_FAILURES = (
    "out of memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "cuda_error_out_of_memory",
)
# Batches failing one after another with the same error mean the device, not the data.
SAME_ERROR_BATCHES_FOR_DEVICE_FAILURE = 3
_ACCELERATOR_ERROR = getattr(torch, "AcceleratorError", None)  # torch >= 2.8


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA out-of-memory, whichever library raised it and as what."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(m in text for m in _ALLOCATION_FAILURES)


class DeviceFailedError(RuntimeError):
    """The device is unusable (e.g. an illegal memory access sticks to the CUDA context):
    the run must stop, keeping what is finished, instead of failing every later record."""


class DeviceHealth:
    """Tells a failing batch from a failed device, across the files of a run."""

    def __init__(self, threshold: int = SAME_ERROR_BATCHES_FOR_DEVICE_FAILURE) -> None:
        self.threshold = threshold
        self._last_error: str | None = None
        self._repeats = 0

    def batch_succeeded(self) -> None:
        self._last_error, self._repeats = None, 0

    def batch_failed(self, error: BaseException) -> None:
        """Raises `DeviceFailedError` when `error` says the device is unusable."""
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if _ACCELERATOR_ERROR is not None and isinstance(error, _ACCELERATOR_ERROR):
            raise DeviceFailedError(message) from error
        self._repeats = self._repeats + 1 if message == self._last_error else 1
        self._last_error = message
        if self._repeats >= self.threshold:
            raise DeviceFailedError(
                f"{message} (the same error on {self._repeats} batches in a row)"
            ) from error


@dataclass(frozen=True)
class BatchOutcome:
    """Embeddings for `rows`, or the error that left them without one."""

    rows: list[int]
    embeddings: torch.Tensor | None = None  # (len(rows), hidden) float32
    error: str | None = None


def embed_with_oom_split(
    embed: Callable[[BatchInputs], torch.Tensor],
    batch: BatchInputs,
    collate_rows: Callable[[list[int]], BatchInputs],
) -> Iterator[BatchOutcome]:
    """Embed `batch`; on CUDA out-of-memory split it in halves and retry, down to one sequence.

    `collate_rows` rebuilds model inputs for a subset of the rows. Other errors propagate.
    """
    try:
        yield BatchOutcome(batch.rows, embeddings=embed(batch))
        return
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        message = str(error).splitlines()[0] if str(error) else "CUDA out of memory"
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    rows = batch.rows
    if len(rows) == 1:
        yield BatchOutcome(rows, error=f"CUDA out of memory for a single sequence: {message}")
        return
    log.warning("CUDA out of memory on a batch of %d sequences; splitting it", len(rows))
    middle = len(rows) // 2
    for half in (rows[:middle], rows[middle:]):
        yield from embed_with_oom_split(embed, collate_rows(half), collate_rows)
