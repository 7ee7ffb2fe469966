"""The errors the tool reports to its users, each carrying the exit status it ends a
command with, so that the command line maps them in one place (`cli.py`).

`2`: the command cannot run as given (usage, inputs, model); `1`: the data is at fault (a
FASTA, an output or a merge input that cannot be used). Errors a run records and goes on
from (a bad record, file or batch) never reach the command line: they are in its summary.
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3  # 129/130/143: signals.py


class ExtractError(Exception):
    """Base of the tool's own errors; `exit_status` is what the command exits with."""

    exit_status = EXIT_FAILURES


class UsageError(ExtractError):
    """The command cannot run as given: fix the arguments, paths or model."""

    exit_status = EXIT_USAGE


class InputError(UsageError):
    """The inputs cannot be turned into jobs; the message says which path and why."""


class ModelLoadError(UsageError, RuntimeError):
    """The model cannot be loaded or used as asked; the message says why and what to do."""


class FastaError(ExtractError):
    """The whole file is unusable: unreadable, not FASTA, or without records."""


class StaleOutputError(ExtractError):
    """An existing output was made by another model or truncation: the drop-in refuses to
    hand its features on as this model's; the message names why and the way out."""


class OutputError(ExtractError):
    """An output file is missing, unloadable or not in the VirNucPro format."""


class MergeError(ExtractError):
    """The inputs cannot be merged; the message names the file and the reason."""


class MergeFormatError(MergeError):
    """A merge input is not a DNABERT-S or `_ESM.pt` file of VirNucPro's format: the
    command was given the wrong file, so it exits as a usage error."""

    exit_status = EXIT_USAGE


def usage_error(message: str, command: str = "fastesm-extract") -> int:
    print(f"{command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
