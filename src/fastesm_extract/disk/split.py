"""One large FASTA -> parts `output_1.fa`, `output_2.fa`, ... -> `output_1_ESM.pt`, ...

Parts are cut as VirNucPro's `split_fasta_file()` cuts them: records are counted by their
header lines and the k-th record (from 0) goes to part `k // N + 1`; lines before the first
header are dropped. Splitting the protein and the nucleotide file with the same N therefore
gives parts that pair by name (`output_3_ESM.pt` with `output_3_DNABERT_S.pt`). Records are
copied as Python's text mode copies them: every line end (LF, CRLF, CR) becomes LF; a leading
UTF-8 BOM is not part of the first header.

The input is streamed, so memory holds about one part. `sources.SplitSource` turns the
parts into jobs for the runner (`OUTDIR/parts/output_K.fa` -> `OUTDIR/output_K_ESM.pt`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastesm_extract.disk.fasta import FastaReader
from fastesm_extract.disk.layout import (
    PART_NAME,
    PART_OUTPUT_NAME,
    manifest_path,
    numbered,
    part_name,
    parts_folder,
)
from fastesm_extract.disk.store import atomic_write
from fastesm_extract.errors import FastaError

log = logging.getLogger("fastesm_extract")


@dataclass(frozen=True)
class SplitPart:
    """One part of a split FASTA file."""

    index: int  # 1-based, as in output_1.fa
    path: Path
    n_records: int
    rewritten: bool  # False when an identical part file was already there


def files_a_split_may_write(output_dir: Path) -> list[Path]:
    """The part files and part outputs (with manifests) already in `output_dir`: a split
    into `output_dir` may rewrite or delete any of them."""
    parts_dir = parts_folder(output_dir)
    parts = numbered(parts_dir, PART_NAME)
    outputs = numbered(output_dir, PART_OUTPUT_NAME)
    return [
        *(parts_dir / name for name in parts),
        *(output_dir / name for name in outputs),
        *(manifest_path(output_dir / name) for name in outputs),
    ]


def iter_parts(path: str | Path, records_per_part: int) -> Iterator[tuple[bytes, int]]:
    """Stream `(part bytes, record count)` for each part of `path` (plain or gzip).

    Read with the package's one FASTA reader, so records are counted exactly as `extract`
    counts them (LF, CRLF and CR line ends, a leading BOM ignored); part lines end in LF.
    Raises `FastaError` when the file cannot be read or has no header line at all.
    """
    if records_per_part < 1:
        raise ValueError("records_per_part must be positive")
    reader = FastaReader(path)
    texts: list[bytes] = []
    previous = None  # each record is written once the next one shows it is not the last
    for record in reader:
        if previous is not None:
            texts.append(b">" + previous + b"\n")  # the line end the reader split on
            if len(texts) == records_per_part:
                yield b"".join(texts), len(texts)
                texts = []
        previous = record
    if previous is None:
        raise FastaError(f"{path} is not FASTA: no line starts with '>'")
    texts.append(b">" + previous)  # the last record ends as the file ends
    yield b"".join(texts), len(texts)


def split_fasta(
    path: str | Path,
    parts_dir: str | Path,
    records_per_part: int,
    before_rewrite: Callable[[int, str], None] = lambda index, sha256: None,
) -> list[SplitPart]:
    """Split `path` into `parts_dir/output_1.fa`, ... of `records_per_part` records each.

        Each part is written atomically; a part file that already holds exactly these bytes is
        left alone. `before_rewrite(index, sha256)` is called before part `index` is (re)written
    with content of that SHA-256 (hex).
    """
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, (content, n_records) in enumerate(iter_parts(path, records_per_part), start=1):
        target = parts_dir / part_name(index)
        unchanged = (
            target.is_file()
            and target.stat().st_size == len(content)
            and target.read_bytes() == content
        )
        if not unchanged:
            before_rewrite(index, hashlib.sha256(content).hexdigest())
            atomic_write(target, lambda handle, content=content: handle.write(content))
        parts.append(SplitPart(index, target, n_records, not unchanged))
    leftovers = numbered(parts_dir, PART_NAME, len(parts))
    if leftovers:
        log.warning(
            "%s: %d part files from an earlier split are not part of this one and are ignored: %s",
            parts_dir,
            len(leftovers),
            ", ".join(leftovers[:5]),
        )
    return parts
