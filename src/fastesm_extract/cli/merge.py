"""`fastesm-extract merge`: DNABERT-S + ESM files or folders -> `_merged.pt` (merge_data())."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from fastesm_extract.disk.failures import escape
from fastesm_extract.disk.layout import merged_name
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, InputError, MergeError, usage_error
from fastesm_extract.merge.folders import MergeOutcome, merge_folder
from fastesm_extract.merge.pairs import merge_files
from fastesm_extract.results import FAILED, SKIPPED, STALE, WRITTEN
from fastesm_extract.running.signals import describe, exit_status, stop_signals_as_interrupt

MERGE = "fastesm-extract merge"


def print_failed(messages: list[str], limit: int = 20) -> None:
    """`FAILED <message>` (escaped: one line each) for the first `limit`, then how many more."""
    for message in messages[:limit]:
        print(f"  FAILED {escape(message)}", file=sys.stderr)
    if len(messages) > limit:
        print(f"  ... and {len(messages) - limit} more", file=sys.stderr)


def print_merge_summary(outcomes: list[MergeOutcome], accept_stale: bool) -> None:
    count = Counter(outcome.status for outcome in outcomes)
    print(
        f"{MERGE}: {count[WRITTEN]} written, {count[SKIPPED]} skipped, {count[FAILED]} failed"
        + (f", {count[STALE]} stale" if count[STALE] else ""),
        file=sys.stderr,
    )
    print_failed([outcome.message for outcome in outcomes if outcome.status == FAILED])
    stale = [o for o in outcomes if o.status == STALE]
    verdict = "accepted (--accept-stale)" if accept_stale else "NOT current"
    if kept := [o for o in stale if not o.stale_input]:
        print(
            f"  {len(kept)} stale merged files kept, {verdict}: made from another model's "
            "features; --redo-stale rebuilds them, --accept-stale accepts them",
            file=sys.stderr,
        )
    if inputs := [o for o in stale if o.stale_input]:
        print(
            f"  {len(inputs)} ESM inputs of another model not merged, {verdict}: re-extract "
            "them (fastesm-extract extract --redo-stale), --accept-stale accepts them",
            file=sys.stderr,
        )
    for outcome in stale[:10]:
        print(f"    stale {outcome.output}: {outcome.message}", file=sys.stderr)
    rebuilt = [outcome for outcome in outcomes if outcome.rebuilt_because]
    for outcome in rebuilt[:10]:
        print(f"  rebuilt {outcome.output}: {outcome.rebuilt_because}", file=sys.stderr)


def merge_exit_status(outcomes: list[MergeOutcome], accept_stale: bool) -> int:
    """0 only when every merged file is current (stale ones count with `accept_stale`)."""
    if any(o.status == FAILED or (o.status == STALE and not accept_stale) for o in outcomes):
        return EXIT_FAILURES
    return EXIT_OK


def run_merge(args: argparse.Namespace) -> int:
    """`merge`, stopped cleanly by Ctrl-C, SIGTERM or SIGHUP: the file being written is
    abandoned (its temporary removed), finished merged files are kept, exit 128 + signal."""
    try:
        with stop_signals_as_interrupt():
            return _run_merge(args)
    except KeyboardInterrupt as interrupt:
        print(
            f"{MERGE}: {describe(interrupt)}; finished merged files are kept, rerun to resume",
            file=sys.stderr,
        )
        return exit_status(interrupt)


def _run_merge(args: argparse.Namespace) -> int:
    dnabert_s, output = Path(args.dnabert_s), Path(args.output)
    esm = Path(args.esm) if args.esm is not None else None
    for name in ("expect_dim", "dnabert_s_dim"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            return usage_error(f"--{name.replace('_', '-')} must be positive", MERGE)
    options = dict(
        label=args.label,
        allow_missing=args.allow_missing,
        expect_dim=args.expect_dim,
        dnabert_s_dim=args.dnabert_s_dim,
    )
    if dnabert_s.is_dir():
        if esm is not None and not esm.is_dir():
            message = f"{dnabert_s} is a folder, so ESM must be a folder too, not {esm}"
            return usage_error(message, MERGE)
        if output.exists() and not output.is_dir():
            return usage_error(f"-o {output} is a file: give a folder for folder inputs", MERGE)
        try:
            outcomes = merge_folder(
                dnabert_s,
                esm,
                output,
                overwrite=args.overwrite,
                redo_stale=args.redo_stale,
                **options,
            )
        except (MergeError, InputError) as error:
            return usage_error(str(error), MERGE)
        print_merge_summary(outcomes, args.accept_stale)
        return merge_exit_status(outcomes, args.accept_stale)
    if esm is None or not esm.is_file() or not dnabert_s.is_file():
        missing = [str(p) for p in (dnabert_s, esm) if p is not None and not p.exists()]
        if missing:
            return usage_error(f"{', '.join(missing)} does not exist", MERGE)
        return usage_error("give a DNABERT-S file and an ESM file, or a DNABERT-S folder", MERGE)
    if output.is_dir():
        output = output / merged_name(dnabert_s)
    try:
        result = merge_files(dnabert_s, esm, output, **options)
    except InputError as error:
        return usage_error(str(error), MERGE)
    except (MergeError, OSError) as error:
        print(f"{MERGE}: error: {error}", file=sys.stderr)
        # Not a DNABERT-S or ESM file (MergeFormatError): the wrong file was given, exit 2.
        return error.exit_status if isinstance(error, MergeError) else EXIT_FAILURES
    labelled = f", labels {result.labels}" if result.labels is not None else ""
    missing = len(result.missing_in_esm) + len(result.missing_in_dnabert_s)
    left_out = f"; {missing} IDs on one side only left out" if missing else ""
    print(
        f"fastesm-extract merge: wrote {output}: {len(result.ids)} rows x "
        f"{result.data.shape[1]}{labelled}{left_out}",
        file=sys.stderr,
    )
    return EXIT_OK
