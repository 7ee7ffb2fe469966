"""Any text -> one printable, tab-free line, and back: the failure log's columns.

File names may hold tabs, newlines, runs of spaces or bytes that are not UTF-8 (Python
keeps those as surrogate escapes, U+DC80..U+DCFF); record IDs may hold a NUL. Collapsing or
dropping them would make a log line name another file; writing them raw breaks the
tab-separated line or the UTF-8 encoding. So each is escaped, and `unescape` restores the
exact text:

- a backslash -> `\\\\`; tab, newline, carriage return -> `\\t`, `\\n`, `\\r`;
- a byte that is not UTF-8 (a surrogate escape) -> `\\xNN`, the byte itself;
- any other control, line-separating or surrogate character -> `\\uXXXX`.
Everything else, spaces included, is kept as it is.
"""

from __future__ import annotations

import re
import unicodedata

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
