"""FASTA (plain or gzip) -> protein records, with the clean-up and checks
that make the label and sequence the original pipeline's.

A bad record becomes a `RecordFailure`, never an exception; only a file that cannot be read
or is not FASTA at all raises `FastaError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import stat
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastesm_extract.disk.failures import NO_RECORD_ID, FailureKind, RecordFailure
from fastesm_extract.disk.file_identity import unchanged_identity
from fastesm_extract.disk.manifest_schema import InputRead
from fastesm_extract.errors import FastaError

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 20
_WHITESPACE = b" \t\r\n\x0b\x0c"
# After upper-casing, every letter is accepted (letters outside the ESM vocabulary become
# <unk>, as in EsmTokenizer); '-' and '.' are ESM tokens. Anything else fails the record.
_ALLOWED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-."


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
    sha256: str = ""  # of the file's bytes as stored, hashed while they were read
    size: int = 0  # of those same bytes
    identity: dict = field(default_factory=dict)  # its stat identity (file_identity.py)

    @property
    def n_read(self) -> int:
        return len(self.records) + len(self.failures)

    @property
    def source(self) -> InputRead:
        """What a manifest records of the input: the bytes parsed, not the file as it is now."""
        return InputRead(path=self.path, size=self.size, sha256=self.sha256, identity=self.identity)


def record_ids(contents: FastaContents) -> list[str]:
    """The ID of every record read, usable or failed (order not kept)."""
    return [record.id for record in contents.records] + [f.record_id for f in contents.failures]


class FastaReader:
    """The one FASTA reader of the package: `extract`, `split` and `verify` all read with it.

    Iterating yields the text of each record in file order, from after its `>` to before the
    next header line, with every line end (LF, CRLF or CR, mixed too) made LF and a leading
    UTF-8 BOM dropped. A header is a line that starts with `>`, so records read always equal
    header lines. The file is read once, as a stream (a pipe such as `/dev/stdin` works), and
    gunzipped when it is gzip (detected by content). After iteration, `preamble` holds the
    text before the first header and `sha256` the hash of the bytes read from disk.
    Raises `FastaError` when the file cannot be read or its gzip data is damaged.
    """

    def __init__(self, path: str | Path, source: BinaryIO | None = None) -> None:
        self.path = Path(path)
        self._source = source
        self._digest = hashlib.sha256()
        self.preamble = b""
        self.sha256 = ""
        self.size = 0
        self.identity: dict = {}  # of a regular file unchanged while read (file_identity.py)

    def __iter__(self) -> Iterator[bytes]:
        pending = b"\n"  # a line end before the file: the first header is found like the others
        started = False
        try:
            for block in _normalized_line_ends(self._decoded_blocks()):
                pending += block
                pieces = pending.split(b"\n>")
                pending = pieces.pop()
                if pieces and not started:
                    self.preamble, started = pieces.pop(0)[1:], True
                yield from pieces
        except OSError as error:
            raise FastaError(f"cannot read {self.path}: {error.strerror or error}") from error
        except (EOFError, zlib.error) as error:
            raise FastaError(f"{self.path} is a damaged or truncated gzip file: {error}") from error
        if started:
            yield pending
        else:
            self.preamble = pending[1:]
        self.sha256 = self._digest.hexdigest()

    def _raw_blocks(self) -> Iterator[bytes]:
        """The bytes as stored, in blocks, each hashed as it is read."""
        with contextlib.ExitStack() as stack:
            source = self._source or stack.enter_context(open(self.path, "rb"))
            before = None if self._source else os.fstat(source.fileno())
            while block := source.read(_BLOCK):
                self._digest.update(block)
                self.size += len(block)
                yield block
            if before is not None and stat.S_ISREG(before.st_mode):
                self.identity = unchanged_identity(before, os.fstat(source.fileno()))

    def _decoded_blocks(self) -> Iterator[bytes]:
        """The file's bytes, gunzipped (all members, as `gzip` does) when it starts as gzip."""
        blocks = self._raw_blocks()
        head = b""
        for block in blocks:  # a pipe may hand over fewer bytes than the gzip magic
            head += block
            if len(head) >= len(_GZIP_MAGIC):
                break
        if not head.startswith(_GZIP_MAGIC):
            yield head
            yield from blocks
            return
        decompressor, fed = zlib.decompressobj(wbits=31), False
        for block in itertools.chain([head], blocks):
            while block:
                if not fed:  # between members, gzip allows zero padding
                    block = block.lstrip(b"\0")
                    if not block:
                        break
                yield decompressor.decompress(block)
                fed = True
                if decompressor.eof:  # the next member, if any, starts in the unused data
                    block, fed = decompressor.unused_data, False
                    decompressor = zlib.decompressobj(wbits=31)
                else:
                    block = b""
        if fed:
            raise EOFError("the compressed data ends early")


def _normalized_line_ends(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """LF, CRLF and CR line ends all become LF; a UTF-8 BOM at the start is dropped."""
    carry = b""  # a CR at the end of a block may be the first half of a CRLF
    first = True
    for block in blocks:
        block = carry + block
        if first:
            if len(block) < len(_BOM) and _BOM.startswith(block):
                carry = block  # too short to tell yet
                continue
            block, first = block.removeprefix(_BOM), False
        carry = b"\r" if block.endswith(b"\r") else b""
        if carry:
            block = block[:-1]
        yield block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if carry:
        yield b"\n" if not first else carry


def clean_sequence(raw: bytes) -> bytes:
    """Remove whitespace, upper-case, drop one trailing stop '*'."""
    sequence = raw.translate(None, _WHITESPACE).upper()
    return sequence[:-1] if sequence.endswith(b"*") else sequence


def record_id_of(header: str) -> str:
    """The record ID of a header line (without its `>`), as Biopython's `record.id`: the
    first word, words split at any Unicode whitespace (no-break space, em space, NEL, the
    file separator U+001C, ...), not ASCII whitespace only; "" when there is none."""
    words = header.split(None, 1)
    return words[0] if words else ""


def _check_record(record_id: str, sequence: bytes) -> RecordFailure | None:
    if not sequence:
        return RecordFailure(record_id, FailureKind.EMPTY_SEQUENCE, "record has no residues")
    bad = sequence.translate(None, _ALLOWED)
    if bad:
        shown = ", ".join(sorted({repr(chr(b)) if b < 128 else f"0x{b:02x}" for b in bad})[:5])
        return RecordFailure(record_id, FailureKind.INVALID_CHARACTER, f"sequence contains {shown}")
    return None


def _parse_records(chunks: Iterable[bytes]) -> tuple[list[ProteinRecord], list[RecordFailure]]:
    """Records and per-record failures from the record texts of a `FastaReader`."""
    records: list[ProteinRecord] = []
    failures: list[RecordFailure] = []
    for chunk in chunks:
        header, _, raw_sequence = chunk.partition(b"\n")
        # Bytes that are not UTF-8 matter only in the ID (the description is not used).
        record_id = record_id_of(header.decode("utf-8", "surrogateescape"))
        raw_id = record_id.encode("utf-8", "surrogateescape")
        if raw_id.decode("utf-8", "replace") != record_id:
            # Shown with \xNN for the bytes: a text every log, manifest and message can hold.
            shown = raw_id.decode("utf-8", "backslashreplace")
            failures.append(
                RecordFailure(shown, FailureKind.INVALID_HEADER, "header is not valid UTF-8")
            )
            continue
        if not record_id:
            message = "header has no record ID"
            failures.append(RecordFailure(NO_RECORD_ID, FailureKind.INVALID_HEADER, message))
            continue
        if "\x00" in record_id:
            message = "record ID contains a NUL byte"
            failures.append(RecordFailure(record_id, FailureKind.INVALID_HEADER, message))
            continue
        sequence = clean_sequence(raw_sequence)
        failure = _check_record(record_id, sequence)
        if failure is None:
            records.append(ProteinRecord(record_id, sequence))
        else:
            failures.append(failure)
    return records, failures


def _read(reader: FastaReader) -> FastaContents:
    records, failures = _parse_records(reader)
    path = reader.path
    if not records and not failures:
        if reader.preamble.strip():
            raise FastaError(f"{path} is not FASTA: no line starts with '>'")
        raise FastaError(f"{path} is empty: no FASTA records")
    if reader.preamble.strip():
        raise FastaError(f"{path} is not FASTA: the first non-blank line does not start with '>'")
    counts = Counter(record.id for record in records)
    duplicates = [record_id for record_id, count in counts.items() if count > 1]
    return FastaContents(
        path, records, failures, duplicates, reader.sha256, reader.size, reader.identity
    )


def parse_fasta(data: bytes, path: Path) -> FastaContents:
    """Parse FASTA bytes (plain or gzip) into records and per-record failures, in file order."""
    return _read(FastaReader(path, io.BytesIO(data)))


def read_fasta(path: str | Path) -> FastaContents:
    """Read one FASTA file (plain or gzip) in one pass, hashing it on the way.

    Raises `FastaError` when the file is unusable.
    """
    return _read(FastaReader(path))


def record_from_pair(record_id: str, sequence: str | bytes) -> ProteinRecord | RecordFailure:
    """An `(id, sequence)` given in memory, cleaned and checked as a FASTA record would be."""
    if not isinstance(record_id, str) or not record_id or "\x00" in record_id:
        shown = record_id if isinstance(record_id, str) and record_id else "-"
        return RecordFailure(shown, FailureKind.INVALID_HEADER, "no record ID")
    if sequence is None:
        return RecordFailure(record_id, FailureKind.EMPTY_SEQUENCE, "no sequence (None)")
    if not isinstance(sequence, (str, bytes, bytearray, memoryview)):  # bytes(5): 5 zeros
        message = f"the sequence is a {type(sequence).__name__}, not text"
        return RecordFailure(record_id, FailureKind.INVALID_CHARACTER, message)
    raw = sequence.encode("utf-8") if isinstance(sequence, str) else bytes(sequence)
    cleaned = clean_sequence(raw)
    return _check_record(record_id, cleaned) or ProteinRecord(record_id, cleaned)
