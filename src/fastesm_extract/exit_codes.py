"""The exit statuses of every command, and the one-line usage error (exit 2)."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3  # 129/130/143: signals.py


def usage_error(message: str, command: str = "fastesm-extract") -> int:
    print(f"{command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
