"""`--summary-json` of `extract` and `plan`: one schema (`results.summary_as_dict`, README
"The summary JSON"), written on every exit, never over a file the command reads or writes.

A workflow engine reads it instead of parsing logs, so an argument error, a usage error, a
signal or an internal error leaves the same keys as a finished run, with `ok` false, the
`exit_status` and the `error`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from fastesm_extract.disk.layout import (
    FAILURE_LOG_NAME,
    PART_NAME,
    PART_OUTPUT_NAME,
    manifest_path,
    parts_folder,
)
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.disk.split import files_a_split_may_write
from fastesm_extract.disk.store import atomic_write
from fastesm_extract.errors import ExtractError, InputError
from fastesm_extract.results import RunSummary, summary_as_dict
from fastesm_extract.running.sources import plan_jobs

COMMANDS = ("extract", "plan")  # the commands whose summary this schema is
_ADVICE = "give --summary-json another path"


def error_summary(command: str, failure_log: Path | None = None) -> dict:
    """The summary of a command that ended before its run finished: every key, nothing done
    (`write_summary_json` adds `ok`, `exit_status` and `error`)."""
    return summary_as_dict(RunSummary(failure_log=failure_log), command)


def write_summary_json(path: str | Path, data: dict, status: int) -> None:
    """Write `data` (every key of the schema) ending with `status`, atomically: a reader
    never sees half a summary."""
    data = {**data, "ok": status == 0, "exit_status": status}
    text = json.dumps(data, indent=2).encode() + b"\n"
    atomic_write(path, lambda handle: handle.write(text))


def refuse_summary_over_run_files(args: argparse.Namespace) -> None:
    """Raise `InputError` when `--summary-json` is an input, an output or manifest the run
    may write, or its failure log, however spelled; before anything is read or written."""
    inputs: list[Path] = [Path(item) for item in args.inputs]
    written: list[Path] = []
    try:
        if args.split_every is not None and args.output_dir is not None:
            written = files_a_split_may_write(Path(args.output_dir))
        else:
            include, exclude = getattr(args, "include", ()), getattr(args, "exclude", ())
            jobs = plan_jobs(list(args.inputs), args.output_dir, include, exclude)
            inputs = [job.fasta for job in jobs]
            written = [path for job in jobs for path in (job.output, manifest_path(job.output))]
    except (ExtractError, OSError):
        pass  # the command reports its inputs' problem itself: the named paths still count
    if args.split_every is not None and args.output_dir is not None:
        _refuse_a_part_name(Path(args.summary_json), Path(args.output_dir))
    folder = Path(args.output_dir) if args.output_dir is not None else Path.cwd()
    failure_log = Path(args.failure_log) if args.failure_log else folder / FAILURE_LOG_NAME
    refuse_writing_over_inputs(inputs, [args.summary_json], _ADVICE, [*written, failure_log])


def _refuse_a_part_name(path: Path, output_dir: Path) -> None:
    """A split writes parts (`parts/output_K.fa`) and outputs (`output_K_ESM.pt[.json]`)
    not there yet when it starts: a summary named like one of them is refused too."""
    where = Path(os.path.realpath(path))
    name = where.name.removesuffix(".json")
    if (
        where.parent == Path(os.path.realpath(parts_folder(output_dir)))
        and PART_NAME.fullmatch(where.name)
    ) or (where.parent == Path(os.path.realpath(output_dir)) and PART_OUTPUT_NAME.fullmatch(name)):
        raise InputError(f"refusing to write {path}: the split may write a part there; {_ADVICE}")


def summary_json_in(argv: Sequence[str]) -> str | None:
    """The `--summary-json PATH` of an `extract` or `plan` command line that argparse
    refused (so no namespace holds it); None when absent or not found that plainly."""
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        return None
    for i, word in enumerate(argv):
        if word == "--":
            break
        if word == "--summary-json" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--summary-json="):
            return word.split("=", 1)[1]
    return None


def refuse_summary_over_named_files(argv: Sequence[str], path: str) -> None:
    """Raise `InputError` when `path` is a file named on the command line (an input, a
    failure log, ...): the only paths known when argparse refused the arguments."""
    words = [w for i, w in enumerate(argv) if i == 0 or argv[i - 1] != "--summary-json"]
    named = [Path(word) for word in words if Path(word).is_file()]  # `--x=PATH`: not a file
    refuse_writing_over_inputs(named, [path], _ADVICE)
