"""FASTA (plain or gzip) -> protein records, with the clean-up and checks of SPEC section 2.

A bad record becomes a `RecordFailure`, never an exception; only a file that cannot be read
or is not FASTA at all raises `FastaError`.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .failures import RecordFailure

FASTA_SUFFIXES = (".fa", ".faa", ".fasta")
_GZIP_MAGIC = b"\x1f\x8b"
_WHITESPACE = b" \t\r\n\x0b\x0c"
# After upper-casing, every letter is accepted (letters outside the ESM vocabulary become
# <unk>, as in EsmTokenizer); '-' and '.' are ESM tokens. Anything else fails the record.
_ALLOWED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-."


class FastaError(Exception):
    """The whole file is unusable: unreadable, not FASTA, or without records."""


@dataclass(frozen=True)
class ProteinRecord:
    """One usable FASTA record. `sequence` is cleaned ASCII bytes (upper case, no '*')."""

    id: str
    sequence: bytes


@dataclass(frozen=True)
class FastaContents:
    """Everything read from one FASTA file, in file order."""

    path: Path
    records: list[ProteinRecord]
    failures: list[RecordFailure]
    duplicate_ids: list[str] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        return len(self.records) + len(self.failures)


def output_stem(path: Path) -> str:
    """Input name without `.gz` and its FASTA extension: `output_1.fa.gz` -> `output_1`."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    for suffix in FASTA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_fasta_name(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(FASTA_SUFFIXES)


def open_fasta_stream(path: str | Path) -> BinaryIO:
    """`path` opened for streaming bytes, gunzipped when it is gzip (detected by content)."""
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")  # type: ignore[return-value]


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (detected by content, not by name)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise FastaError(f"cannot read {path}: {error.strerror or error}") from error
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise FastaError(f"{path} is a damaged or truncated gzip file: {error}") from error


def clean_sequence(raw: bytes) -> bytes:
    """Remove whitespace, upper-case, drop one trailing stop '*' (SPEC 2)."""
    sequence = raw.translate(None, _WHITESPACE).upper()
    return sequence[:-1] if sequence.endswith(b"*") else sequence


def _check_record(record_id: str, sequence: bytes) -> RecordFailure | None:
    if not sequence:
        return RecordFailure(record_id, "empty_sequence", "record has no residues")
    bad = sequence.translate(None, _ALLOWED)
    if bad:
        shown = ", ".join(sorted({repr(chr(b)) if b < 128 else f"0x{b:02x}" for b in bad})[:5])
        return RecordFailure(record_id, "invalid_character", f"sequence contains {shown}")
    return None


def parse_fasta(data: bytes, path: Path) -> FastaContents:
    """Parse FASTA bytes into records and per-record failures, in file order."""
    body = data.lstrip()
    if not body:
        raise FastaError(f"{path} is empty: no FASTA records")
    if not body.startswith(b">"):
        raise FastaError(f"{path} is not FASTA: the first non-blank line does not start with '>'")
    records: list[ProteinRecord] = []
    failures: list[RecordFailure] = []
    # Splitting on "\n>" keeps the parse in C; '\r' left by CRLF files is removed as whitespace.
    for chunk in (b"\n" + body).split(b"\n>")[1:]:
        header, _, raw_sequence = chunk.partition(b"\n")
        words = header.split(None, 1)
        try:
            record_id = words[0].decode("utf-8") if words else ""
        except UnicodeDecodeError:
            shown = words[0].decode("utf-8", "backslashreplace")
            failures.append(RecordFailure(shown, "invalid_header", "header is not valid UTF-8"))
            continue
        if not record_id or "\x00" in record_id:
            failures.append(
                RecordFailure(record_id or "-", "invalid_header", "header has no record ID")
            )
            continue
        sequence = clean_sequence(raw_sequence)
        failure = _check_record(record_id, sequence)
        if failure is None:
            records.append(ProteinRecord(record_id, sequence))
        else:
            failures.append(failure)
    counts = Counter(record.id for record in records)
    duplicates = [record_id for record_id, count in counts.items() if count > 1]
    return FastaContents(path, records, failures, duplicates)


def read_fasta(path: str | Path) -> FastaContents:
    """Read one FASTA file (plain or gzip). Raises `FastaError` when the file is unusable."""
    path = Path(path)
    return parse_fasta(read_bytes(path), path)
