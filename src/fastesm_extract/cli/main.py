"""Command-line front end (`fastesm-extract extract`, `merge`, `verify`), nothing else."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastesm_extract.cli.arguments import build_parser
from fastesm_extract.cli.audit import run_audit
from fastesm_extract.cli.merge import print_failed, run_merge
from fastesm_extract.cli.plan import print_plan
from fastesm_extract.cli.summary import (
    error_summary,
    refuse_summary_over_named_files,
    refuse_summary_over_run_files,
    summary_json_in,
    write_summary_json,
)
from fastesm_extract.disk.failures import escape
from fastesm_extract.disk.store import DiskFullError
from fastesm_extract.errors import (  # noqa: F401
    EXIT_FAILURES,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    ExtractError,
    usage_error,
)
from fastesm_extract.extract.progress import on_a_terminal
from fastesm_extract.merge.verify import find_verifiable, verify_file
from fastesm_extract.results import (
    FAILED,
    LOCKED,
    SKIPPED,
    STALE,
    WRITTEN,
    RunSummary,
)
from fastesm_extract.running.config import options_from, resolve_config
from fastesm_extract.running.runner import run
from fastesm_extract.running.signals import describe, exit_status, stop_signals_as_interrupt
from fastesm_extract.running.sources import SplitSource, file_jobs

if TYPE_CHECKING:
    from fastesm_extract.results import RunSummary
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from fastesm_extract.results import RunSummary  # AUTO

log = logging.getLogger("fastesm_extract")


def print_summary(summary: RunSummary) -> None:
    failed_files = [result for result in summary.results if result.status == FAILED]
    invalid = summary.records_invalid
    accepted = " (accepted)" if summary.accept_invalid else ""
    print(
        f"fastesm-extract: {summary.count(WRITTEN)} written, {summary.count(SKIPPED)} "
        f"skipped, {len(failed_files)} failed files; {summary.records_embedded} records "
        f"embedded, {summary.records_failed} failed"
        + (f" ({invalid} invalid input{accepted})" if invalid else "")
        + f" ({summary.seconds:.1f} s)"
        + (f"; {summary.records_truncated} truncated" if summary.records_truncated else ""),
        file=sys.stderr,
    )
    if summary.stopped:
        print(
            f"  STOPPED: {summary.stopped}; finished outputs are kept, rerun (on a working "
            "device) to do the rest",
            file=sys.stderr,
        )
    print_failed([f"{result.job.fasta}: {result.message}" for result in failed_files])
    if stale := summary.count(STALE):
        verdict = "accepted (--accept-stale)" if summary.accept_stale else "NOT current"
        print(
            f"  {stale} stale outputs kept, {verdict}: made by another model or truncation; "
            "--redo-stale rebuilds them, --accept-stale accepts them",
            file=sys.stderr,
        )
        for result in [r for r in summary.results if r.status == STALE][:10]:
            print(f"    stale {escape(f'{result.job.output}: {result.message}')}", file=sys.stderr)
        if stale > 10:
            print(f"    ... and {stale - 10} more", file=sys.stderr)
    if locked := summary.count(LOCKED):
        print(
            f"  {locked} outputs are being computed by another run (see warnings); rerun "
            "after it ends",
            file=sys.stderr,
        )
    if summary.failure_log_problem:
        print(
            f"  the failure log {summary.failure_log} could not be written "
            f"({summary.failure_log_problem}): its lines are in the errors above",
            file=sys.stderr,
        )
    elif summary.count(FAILED) or summary.records_failed:
        print(f"  details: {summary.failure_log}", file=sys.stderr)


def run_extract(args: argparse.Namespace) -> int:
    """`extract` (and `plan` / `--dry-run`), with `--summary-json` written whatever happens
    (every key of its schema), though never over a file the run reads or writes."""
    if args.summary_json:
        try:
            refuse_summary_over_run_files(args)
        except ExtractError as error:
            return usage_error(str(error))  # no summary: its path is the problem
    try:
        status, data = _extract(args)
    except Exception as error:  # a bug: main() says so; the summary still tells the engine
        status, data = EXIT_INTERNAL, {"error": f"internal error: {type(error).__name__}: {error}"}
        if args.summary_json:
            with contextlib.suppress(OSError):
                _write_summary(args, status, data)
        raise
    if args.summary_json:
        try:
            _write_summary(args, status, data)
        except OSError as error:
            print(
                f"fastesm-extract: error: cannot write --summary-json {args.summary_json}: "
                f"{error.strerror or error}",
                file=sys.stderr,
            )
            return status or EXIT_FAILURES
    return status


def _write_summary(args: argparse.Namespace, status: int, data: dict) -> None:
    """`data` over the schema's every key (an early end knows only some of them)."""
    command = "plan" if args.command == "plan" or getattr(args, "dry_run", False) else "extract"
    write_summary_json(args.summary_json, {**error_summary(command), **data}, status)


def _error(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": message}


def _usage(message: str) -> tuple[int, dict]:
    return _error(usage_error(message), message)


def _extract(args: argparse.Namespace) -> tuple[int, dict]:
    from tqdm.contrib.logging import logging_redirect_tqdm

    planning = args.command == "plan" or getattr(args, "dry_run", False)
    if args.toks_per_batch < 1 or args.truncation_seq_length < 1:
        return _usage("--toks-per-batch and --truncation-seq-length must be positive")
    if args.split_every is not None:
        if args.split_every < 1:
            return _usage("--split-every must be positive")
        if len(args.inputs) != 1 or args.output_dir is None:
            return _usage("--split-every takes exactly one FASTA file and -o OUTDIR")
        if planning:
            return _usage("plan does not take --split-every")
        if args.include or args.exclude:
            return _usage("--include/--exclude select files in folders: not --split-every")
    try:
        config = resolve_config(
            environ=os.environ,  # a Slurm array task or torchrun rank without --shard
            log_dir=args.output_dir,
            **options_from(args, show_progress=not args.quiet),
        )
        with stop_signals_as_interrupt(), logging_redirect_tqdm():
            if planning:
                jobs = file_jobs(
                    args.inputs, args.output_dir, config.failure_log, args.include, args.exclude
                )
                return print_plan(jobs, config)
            if args.split_every is None:
                jobs = file_jobs(
                    args.inputs, args.output_dir, config.failure_log, args.include, args.exclude
                )
            else:
                split = SplitSource(
                    args.inputs[0], args.output_dir, args.split_every, config.failure_log
                )
                jobs = split.jobs  # split once the model is loaded
            summary = run(jobs, config)
    except ExtractError as error:  # each carries its exit status (2: usage, 1: data)
        print(f"fastesm-extract: error: {error}", file=sys.stderr)
        return _error(error.exit_status, str(error))
    except OSError as error:  # e.g. a full disk while --split-every writes its parts
        where = f"{error.filename}: " if error.filename else ""
        detail = f"{where}{error.strerror or error}"
        if isinstance(error, DiskFullError):
            detail = str(error)  # names the file and says "disk full"
        print(
            f"fastesm-extract: error: {detail}; fix that and rerun (finished outputs are kept)",
            file=sys.stderr,
        )
        return _error(EXIT_FAILURES, str(error))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM/SIGHUP (signals.Terminated)
        what = describe(interrupt)
        done = getattr(interrupt, "summary", None)  # what finished (runner.run puts it there)
        count = f"{done.stopped.removeprefix(f'{what}: ')}; " if done and done.stopped else ""
        print(
            f"fastesm-extract: {what}; finished outputs are kept, {count}rerun to resume",
            file=sys.stderr,
        )
        return exit_status(interrupt), {**(done.to_dict() if done else {}), "error": what}
    print_summary(summary)
    return summary.exit_status, summary.to_dict()


def run_verify(args: argparse.Namespace) -> int:
    outputs = find_verifiable(args.paths)
    if not outputs:
        found = "no _ESM.pt, _merged.pt or _DNABERT_S.pt files found in "
        return usage_error(found + ", ".join(args.paths))
    if args.fasta and len(outputs) != 1:
        return usage_error("--fasta goes with exactly one output")
    reports = [verify_file(output, args.fasta, args.expect_dim) for output in outputs]
    print(f"{'status':7} {'records':>8} {'dim':>5}  output")
    for report in reports:
        if args.quiet and report.ok:
            continue
        status = "OK" if report.ok else "FAILED"
        dim = report.hidden_size if report.hidden_size is not None else "-"
        print(f"{status:7} {report.n_records:>8} {dim:>5}  {report.output}")
        for problem in report.problems:
            print(f"{'':23}problem: {problem}")
        for note in report.notes:
            print(f"{'':23}note: {note}")
    bad = sum(not report.ok for report in reports)
    print(f"{len(reports) - bad} of {len(reports)} outputs OK", file=sys.stderr)
    return EXIT_FAILURES if bad else EXIT_OK


def _summarize_argument_error(argv: list[str], path: str, status: int, printed: str) -> None:
    """The summary of a command line argparse refused (exit 2): its message as `error`."""
    lines = printed.strip().splitlines()
    command = "plan" if argv[0] == "plan" or "--dry-run" in argv else "extract"
    data = {**error_summary(command), "error": lines[-1] if lines else "invalid arguments"}
    try:
        refuse_summary_over_named_files(argv, path)
        write_summary_json(path, data, status)
    except (ExtractError, OSError) as error:
        print(f"fastesm-extract: error: no --summary-json written: {error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    printed = io.StringIO()  # argparse's message, for the summary of an argument error
    try:
        with contextlib.redirect_stderr(printed):
            args = build_parser().parse_args(argv)
    except SystemExit as refused:
        sys.stderr.write(printed.getvalue())
        if refused.code and (path := summary_json_in(argv)):
            _summarize_argument_error(argv, path, int(refused.code), printed.getvalue())
        raise
    sys.stderr.write(printed.getvalue())
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.quiet or not on_a_terminal():
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars: not in a log file
    commands = {
        "extract": run_extract,
        "plan": run_extract,
        "merge": run_merge,
        "verify": run_verify,
        "audit": run_audit,
    }
    try:
        return commands[args.command](args)
    except Exception as error:
        if os.environ.get("FASTESM_EXTRACT_DEBUG"):
            raise
        # A bug, not a bad input: say so in one line; the traceback is one variable away.
        print(
            f"fastesm-extract: internal error: {type(error).__name__}: {error}\n"
            "  finished outputs are kept; set FASTESM_EXTRACT_DEBUG=1 to see the traceback, "
            "and please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
