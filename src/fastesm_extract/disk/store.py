"""VirNucPro `_ESM.pt` files: atomic writing, safe loading, validation."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import secrets
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import torch

from fastesm_extract.disk.esm_pickle import PICKLE_MODULE
from fastesm_extract.disk.layout import temporaries_of, temporary_path
from fastesm_extract.errors import OutputError


def embeddings_from_block(block: torch.Tensor) -> list[torch.Tensor]:
    """One (hidden,) tensor per row, as views of one float32 block.

    The views share a single storage, so `torch.save` writes one contiguous array instead of
    thousands of small ones; loading gives the same list of 1-D float32 tensors.
    """
    return list(block.contiguous().unbind(0))


def finite_rows(block: torch.Tensor) -> torch.Tensor:
    """(n,) bool: rows of a (n, d) block whose values are all finite.

    A row's sum is finite only if every value is, so one cheap reduction screens the block;
    the rare flagged rows (a non-finite value, or a sum that overflowed) are checked exactly.
    """
    finite = torch.isfinite(block.sum(dim=1))  # (n,)
    flagged = torch.nonzero(~finite).flatten()
    if len(flagged):
        finite[flagged] = torch.isfinite(block[flagged]).all(dim=1)
    return finite


def validate_block(proteins: list[str], block: torch.Tensor, hidden_size: int) -> list[str]:
    """Problems with embeddings about to be written as one (n, hidden) block; empty when valid."""
    if block.dim() != 2 or block.dtype != torch.float32:
        return [f"embeddings are {tuple(block.shape)} {block.dtype}, not (n, d) float32"]
    if block.shape[1] != hidden_size:
        return [f"{block.shape[1]} dimensions, expected {hidden_size}"]
    if block.shape[0] != len(proteins):
        return [f"{len(proteins)} proteins but {block.shape[0]} embeddings"]
    bad = torch.nonzero(~finite_rows(block)).flatten().tolist()
    return [f"{proteins[row]}: embedding has NaN or infinite values" for row in bad[:5]]


def validate_embeddings(
    proteins: object, data: object, hidden_size: int | None = None
) -> list[str]:
    """Problems that make `{'proteins': proteins, 'data': data}` unusable; empty when valid."""
    if not isinstance(proteins, list) or not all(isinstance(p, str) for p in proteins):
        return ["'proteins' is not a list of strings"]
    if not isinstance(data, list) or not all(isinstance(t, torch.Tensor) for t in data):
        return ["'data' is not a list of tensors"]
    if len(proteins) != len(data):
        return [f"{len(proteins)} proteins but {len(data)} embeddings"]
    problems = []
    for label, tensor in zip(proteins, data):
        if tensor.layout != torch.strided:  # sparse and other layouts cannot be stacked
            problems.append(f"{label}: a {tensor.layout} tensor, not a dense one")
        elif tensor.dim() != 1 or tensor.dtype != torch.float32:
            problems.append(f"{label}: shape {tuple(tensor.shape)} {tensor.dtype}, not 1-D float32")
        elif tensor.shape[0] == 0:
            problems.append(f"{label}: a 0-dimensional embedding")
        elif hidden_size is not None and tensor.shape[0] != hidden_size:
            problems.append(f"{label}: {tensor.shape[0]} dimensions, expected {hidden_size}")
    sizes = {tensor.shape[0] for tensor in data if tensor.dim() == 1}
    if not problems and len(sizes) > 1:
        problems.append(f"embeddings have different sizes: {sorted(sizes)[:5]}")
    if not problems and data:
        finite = finite_rows(torch.stack(data))  # (n,): one vectorized check for all records
        problems = [
            f"{proteins[row]}: embedding has NaN or infinite values"
            for row in torch.nonzero(~finite).flatten().tolist()
        ]
    if len(problems) > 5:
        problems = [*problems[:5], f"... {len(problems) - 5} more"]
    return problems


def load_weights_only(path: str | Path) -> object:
    """`torch.load(path, weights_only=True)` on the CPU (never unpickles code); any failure
    to load is an `OutputError` naming the file."""
    try:
        check_archive_size(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on bad bytes
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise OutputError(
            f"{path} cannot be loaded: {type(error).__name__} {first_line}"
        ) from error


def load_embeddings(
    path: str | Path, hidden_size: int | None = None
) -> tuple[list[str], list[torch.Tensor]]:
    """Load and validate an output with `weights_only=True` (never unpickles code)."""
    path = Path(path)
    content = load_weights_only(path)
    if not isinstance(content, dict) or set(content) != {"proteins", "data"}:
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise OutputError(
            f"{path} is not an _ESM.pt file: expected keys proteins, data; got {keys}"
        )
    try:
        problems = validate_embeddings(content["proteins"], content["data"], hidden_size)
    except Exception as error:  # noqa: BLE001 - odd tensors (e.g. quantized) must not crash
        problems = [f"cannot be checked: {type(error).__name__}: {error}"]
    if problems:
        raise OutputError(f"{path} is invalid: " + "; ".join(problems))
    return content["proteins"], content["data"]


def remove_leftover_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files a killed run left for `path` (and `path.json`); returns them.

    Only files named for this very output are touched, so runs writing other outputs into
    the same folder are unaffected.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    leftovers = temporaries_of(path)
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _create_temporary(path: Path) -> BinaryIO:
    """A new, empty `.tmp-<name>.<random>.part` beside `path`, open for writing.

    Created by `open(..., "xb")` (mode 0666 less the umask, as any program's files) rather
    than `tempfile`, whose files are 0600 whatever the umask: a cluster group could not read
    the outputs.
    """
    while True:
        candidate = temporary_path(path, secrets.token_hex(4))
        try:
            return open(candidate, "xb")  # noqa: SIM115 - closed by the caller
        except FileExistsError:
            continue


class DiskFullError(OSError):
    """A write failed because its file system is full (or the user's quota is used up)."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror} (disk full)"


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: OSError, path: str | Path) -> DiskFullError:
    """`error` (ENOSPC or EDQUOT) as a `DiskFullError` naming `path`."""
    return DiskFullError(error.errno, error.strerror or os.strerror(error.errno), str(path))


class _WatchedFile:
    """A file whose writes keep the first `OSError` they raise: `torch.save` turns it into a
    `RuntimeError` ("unexpected pos ...") that no longer says the disk is full."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name: str):
        return getattr(self.handle, name)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(handle)` on a temporary file beside `path`, fsync, then rename it to `path`.

    `path` is therefore absent, old, or complete, never partial: `os.replace` is atomic within
    a file system, and the temporary file is removed if anything fails. A full disk raises
    `DiskFullError` (an `OSError`), however the writer reported it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = _create_temporary(path)
    except OSError as error:  # no room for even an empty file (e.g. no inodes left)
        if is_disk_full(error):
            raise disk_full(error, path) from error
        raise
    watched = _WatchedFile(handle)
    try:
        with handle:
            write(watched)  # type: ignore[arg-type] - a file for every use a writer makes
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        for cause in (error, error.__context__, watched.error):
            if is_disk_full(cause):
                raise disk_full(cause, path) from error
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)
        raise


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = True


@contextlib.contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Pickling 10,000 tensors allocates enough objects to trigger many collections, each
    scanning every object of the process (about 40% of the save time) and freeing nothing;
    collection therefore waits until the save is done."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
        _gc_pausers += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def save_embeddings_atomic(path: str | Path, proteins: list[str], data: list[torch.Tensor]) -> None:
    """Write `{'proteins', 'data'}` to `path` atomically (see `atomic_write`): torch.save's
    format, its pickle written in one pass (`esm_pickle`) rather than tensor by tensor."""
    content = {"proteins": proteins, "data": data}
    with _garbage_collection_paused():
        atomic_write(path, lambda handle: torch.save(content, handle, pickle_module=PICKLE_MODULE))


_SLACK_BYTES = 16 << 20  # headers and small records; far below what a bomb declares


class ArchiveTooLargeError(ValueError):
    """The archive declares much more content than its size."""


def check_archive_size(path: str | Path) -> None:
    """Raise `ArchiveTooLargeError` when `path` is a zip whose entries declare more than
    twice its size (plus slack); other files (torch's legacy format) pass unchecked."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: torch.load reports what it is
    size = path.stat().st_size
    if declared > 2 * size + _SLACK_BYTES:
        raise ArchiveTooLargeError(
            f"declares {declared:,} bytes of content in a {size:,}-byte file (a compressed "
            "archive, not written by torch.save): refused without loading it"
        )
