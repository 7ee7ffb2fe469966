"""One large FASTA -> parts `output_1.fa`, `output_2.fa`, ... -> `output_1_ESM.pt`, ...

Parts are cut as VirNucPro's `split_fasta_file()` cuts them: records are counted by their
header lines and the k-th record (from 0) goes to part `k // N + 1`; lines before the first
header are dropped. Splitting the protein and the nucleotide file with the same N therefore
gives parts that pair by name (`output_3_ESM.pt` with `output_3_DNABERT_S.pt`). Records are
copied as Python's text mode copies them: every line end (LF, CRLF, CR) becomes LF; a leading
UTF-8 BOM is not part of the first header.

The input is streamed, so memory holds about one part. Parts go to `OUTDIR/parts/` and are
embedded into `OUTDIR/output_K_ESM.pt` by the usual many-files pipeline, so each part is
written as soon as it is done and a rerun skips the finished ones. An output is trusted only
while its part file is unchanged: when a part's content changes (a different input or N),
its old output is deleted before the part is rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .api import extract_files
from .fasta import FastaError, FastaReader
from .jobs import InputError, check_failure_log
from .layout import (
    FAILURE_LOG_NAME,
    PART_NAME,
    PART_OUTPUT_NAME,
    manifest_path,
    numbered,
    part_name,
    part_output_name,
    parts_folder,
)
from .model import DEFAULT_MODEL, LoadedModel, load_model
from .same_file import refuse_writing_over_inputs
from .store import atomic_write
from .summary import RunSummary

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
    before_rewrite: Callable[[int], None] = lambda index: None,
) -> list[SplitPart]:
    """Split `path` into `parts_dir/output_1.fa`, ... of `records_per_part` records each.

    Each part is written atomically; a part file that already holds exactly these bytes is
    left alone. `before_rewrite(index)` is called before a part file is (re)written.
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
            before_rewrite(index)
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


def extract_split(
    fasta: str | Path,
    output_dir: str | Path,
    records_per_part: int,
    *,
    model: str | torch.nn.Module | LoadedModel = DEFAULT_MODEL,
    tokenizer: object | None = None,
    revision: str | None = None,
    device: str = "cuda",
    devices: list[str] | None = None,
    dtype: str | None = None,
    toks_per_batch: int = 2048,
    truncation_seq_length: int = 1024,
    overwrite: bool = False,
    redo_stale: bool = False,
    accept_invalid: bool = False,
    failure_log: str | Path | None = None,
    show_progress: bool = True,
) -> tuple[list[SplitPart], RunSummary]:
    """Embed one large FASTA as `output_dir/output_1_ESM.pt`, `output_2_ESM.pt`, ...

    Parts of `records_per_part` records (VirNucPro's `split_fasta_file()` assignment) are
    written to `output_dir/parts/`, then embedded by `extract_files` with the other
    arguments, which mean what they mean there. The model is loaded first, so a model
    problem is reported before any splitting. Returns the parts and the run's summary.
    Raises `InputError` when `fasta` is not a file and `FastaError` when it is not FASTA.
    """
    fasta, output_dir = Path(fasta), Path(output_dir)
    if not fasta.is_file():
        raise InputError(f"{fasta} is not a file (--split-every takes one FASTA file)")
    log_path = Path(failure_log) if failure_log is not None else output_dir / FAILURE_LOG_NAME
    check_failure_log(log_path)
    refuse_writing_over_inputs(
        [fasta],
        [log_path, *files_a_split_may_write(output_dir)],
        f"split it into another folder than {output_dir}",
    )
    if isinstance(model, str) and not (devices and len(devices) > 1):
        model = load_model(model, revision=revision, device=device, dtype=dtype)

    def drop_stale_output(index: int) -> None:
        stale = output_dir / part_output_name(index)
        if stale.exists():
            log.warning("%s: part %d changed; removing its old output %s", fasta, index, stale)
            stale.unlink()

    parts = split_fasta(fasta, parts_folder(output_dir), records_per_part, drop_stale_output)
    if leftovers := numbered(output_dir, PART_OUTPUT_NAME, len(parts)):
        log.warning(
            "%s: %d outputs from an earlier split are not part of this one (remove them before "
            "merging): %s",
            output_dir,
            len(leftovers),
            ", ".join(leftovers[:5]),
        )
    rewritten = sum(part.rewritten for part in parts)
    log.info(
        "%s: %d records in %d parts of up to %d (%d part files written, %d unchanged)",
        fasta,
        sum(part.n_records for part in parts),
        len(parts),
        records_per_part,
        rewritten,
        len(parts) - rewritten,
    )
    summary = extract_files(
        [part.path for part in parts],
        output_dir,
        model=model,
        tokenizer=tokenizer,
        revision=revision,
        devices=devices,
        dtype=dtype,
        toks_per_batch=toks_per_batch,
        truncation_seq_length=truncation_seq_length,
        overwrite=overwrite,
        redo_stale=redo_stale,
        accept_invalid=accept_invalid,
        failure_log=failure_log,
        show_progress=show_progress,
    )
    return parts, summary
