"""Failure records and the tab-separated `extraction_failures.log`."""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

log = logging.getLogger("fastesm_extract")

WHOLE_FILE = "-"
# The record-ID column of a record whose header holds no ID (a bare `>`): never a real ID
# (an ID has no space) and never `-`, which marks a whole file.
NO_RECORD_ID = "(no ID)"


class FailureKind(str, Enum):
    """Why a record (or a whole file) has no embedding; equal to its text in the log."""

    # caused by the input itself (see INPUT_KINDS)
    EMPTY_SEQUENCE = "empty_sequence"
    INVALID_CHARACTER = "invalid_character"
    INVALID_HEADER = "invalid_header"
    NUCLEOTIDE_SEQUENCE = "nucleotide_sequence"
    # records, while computed
    OUT_OF_MEMORY = "out_of_memory"
    BATCH_ERROR = "batch_error"
    NON_FINITE_EMBEDDING = "non_finite_embedding"
    # whole files
    UNREADABLE_FILE = "unreadable_file"
    FILE_ERROR = "file_error"
    WRITE_ERROR = "write_error"
    INPUT_VANISHED = "input_vanished"
    LOCK_ERROR = "lock_error"
    DEVICE_ERROR = "device_error"
    WORKER_DIED = "worker_died"
    UNKNOWN = "unknown"  # listed by a manifest older than failure kinds

    def __str__(self) -> str:
        return self.value


# Kinds caused by the input itself: a rerun fails them again, so it reports them instead of
# recomputing. Every other kind may pass, so a rerun retries the file.
INPUT_KINDS = frozenset(
    {
        FailureKind.EMPTY_SEQUENCE,
        FailureKind.INVALID_CHARACTER,
        FailureKind.INVALID_HEADER,
        FailureKind.NUCLEOTIDE_SEQUENCE,
    }
)


@dataclass(frozen=True)
class RecordFailure:
    """A record (or, with `record_id == "-"`, a whole file) that produced no embedding."""

    record_id: str
    kind: FailureKind
    message: str


def is_input_failure(kind: FailureKind | str) -> bool:
    """True when a record failed because of what the FASTA holds, not how it was computed."""
    return kind in INPUT_KINDS


def describe_write_error(error: OSError) -> str:
    """What an `OSError` of a write means, for messages: a full disk says "disk full"."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{error.strerror} (disk full)"
    return error.strerror or str(error)


class FailureLog:
    """Appends one line per failure: UTC time, input file, record ID, kind, message.

    The file is created on the first failure only, so a clean run leaves nothing behind.
    Thread-safe (the reader, compute and writer stages all report here) and safe to share
    between processes on one machine. Never raises: failures that cannot be appended are
    logged as errors instead, and `problem` says why.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self.problem = ""  # why the last append failed, if one did
        self._lock = threading.Lock()

    def record(self, input_file: str | Path, failure: RecordFailure) -> None:
        self.record_many(input_file, [failure])

    def record_many(self, input_file: str | Path, failures: list[RecordFailure]) -> None:
        if not failures:
            return
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = "".join(
            "\t".join(
                (now, escape(str(input_file)), escape(f.record_id), f.kind, escape(f.message))
            )
            + "\n"
            for f in failures
        )
        with self._lock:
            try:
                self._append(lines.encode("utf-8"))
            except OSError as error:
                # A full disk or a bad path must not end the run nor lose the failures: they
                # go to the log messages instead (this works in worker processes too).
                self.problem = (
                    "it is a symbolic link, not followed: remove it"
                    if error.errno == errno.ELOOP
                    else describe_write_error(error)
                )
                log.error(
                    "cannot append to the failure log %s (%s); the failures it would hold:\n%s",
                    self.path,
                    self.problem,
                    lines.rstrip("\n"),
                )
            self.count += len(failures)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Mode 0666 less the umask, like any program's files. One O_APPEND write per call,
        # so worker processes sharing the log never interleave inside a line. A symlink
        # planted in the log's place is not written through (O_NOFOLLOW: ELOOP).
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        descriptor = os.open(self.path, flags, 0o666)
        try:
            while data:
                data = data[os.write(descriptor, data) :]
        finally:
            os.close(descriptor)


_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNNAMED = {value[1]: key for key, value in _NAMED.items()}  # "t" -> tab, ...
_ESCAPE = re.compile(r"\\(\\|t|n|r|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _escape_char(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
        return f"\\u{code:04x}"
    return char


def escape(text: str) -> str:
    """`text` as one line without tabs, encodable as UTF-8; `unescape` gives `text` back."""
    if text.isprintable() and "\\" not in text:
        return text  # the usual case: nothing to escape
    return "".join(map(_escape_char, text))


def _unescape_match(match: re.Match) -> str:
    code = match.group(1)
    if code in _UNNAMED:
        return _UNNAMED[code]
    if code[0] == "x":
        return chr(0xDC00 + int(code[1:], 16))
    return chr(int(code[1:], 16))


def unescape(text: str) -> str:
    """The text `escape` was given (a file name with `os.fsencode` gives its bytes back)."""
    return _ESCAPE.sub(_unescape_match, text)
