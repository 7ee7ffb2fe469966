"""Command-line front end (`fastesm-extract extract`, `merge`, `verify`), nothing else."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .api import extract_files
from .fasta import FastaError
from .jobs import InputError
from .layout import FAILURE_LOG_NAME, PARTS_FOLDER, merged_name
from .merge import MergeError, MergeOutcome, merge_files, merge_folder
from .model import DEFAULT_MODEL, ModelLoadError
from .parallel import parse_devices, parse_shard, shard_from_environment
from .signals import exit_status, sigterm_as_interrupt
from .split import extract_split
from .summary import FAILED, LOCKED, SKIPPED, STALE, WRITTEN, RunSummary
from .verify import find_outputs, verify_output

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3  # 130/143: signals.py
log = logging.getLogger("fastesm_extract")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastesm-extract",
        description="FastESM2_650 protein embeddings as VirNucPro _ESM.pt files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser(
        "extract",
        help="embed FASTA files into <stem>_ESM.pt files",
        description="Embed protein FASTA files (.fa/.faa/.fasta, optionally .gz; folders are "
        "searched recursively). Finished outputs are skipped, so rerunning resumes.",
    )
    extract.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA files or folders")
    extract.add_argument(
        "-o",
        "--output-dir",
        metavar="OUTDIR",
        help="write outputs here, keeping folder layout (default: beside inputs)",
    )
    extract.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub ID or local checkpoint folder (default {DEFAULT_MODEL})",
    )
    extract.add_argument("--revision", help="pin the model to a branch, tag or commit hash")
    extract.add_argument(
        "--device",
        default="cuda",
        help="cuda, cuda:N or cpu (default cuda; never falls back silently)",
    )
    extract.add_argument(
        "--devices",
        metavar="LIST",
        help="one worker process per device, files shared dynamically: cuda:0,cuda:1 or all "
        "(every visible GPU); overrides --device",
    )
    extract.add_argument(
        "--shard",
        metavar="K/N",
        help="do only the K-th of N deterministic shares of the files (1-based); default from "
        "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or torchrun's RANK/WORLD_SIZE when set",
    )
    extract.add_argument(
        "--dtype",
        choices=["auto", "float16", "bfloat16", "float32"],
        default="auto",
        help="auto: float16 on CUDA, float32 on CPU",
    )
    extract.add_argument(
        "--toks-per-batch",
        type=int,
        default=2048,
        help="padded tokens per batch, special tokens included (default 2048)",
    )
    extract.add_argument(
        "--truncation-seq-length",
        type=int,
        default=1024,
        help="residues kept per sequence (default 1024)",
    )
    extract.add_argument(
        "--failure-log",
        metavar="PATH",
        help=f"failure log (default OUTDIR or ./{FAILURE_LOG_NAME})",
    )
    extract.add_argument(
        "--overwrite",
        action="store_true",
        help="recompute outputs that already exist and are valid",
    )
    extract.add_argument(
        "--redo-stale",
        action="store_true",
        help="rebuild outputs made from another input, model (hidden size) or setting, as "
        "their manifest (<output>.json) or dimension shows (default: report and keep them)",
    )
    extract.add_argument(
        "--accept-invalid",
        action="store_true",
        help="exit 0 when the only failures are records invalid as input (empty, bad "
        "characters, bad header); they are still logged and reported",
    )
    extract.add_argument(
        "--split-every",
        type=int,
        metavar="N",
        help="treat the one INPUT as a large FASTA: split it as VirNucPro's split_fasta_file() "
        f"into OUTDIR/{PARTS_FOLDER}/output_1.fa, output_2.fa, ... of N records and embed each "
        "into OUTDIR/output_K_ESM.pt (needs -o; resumes part by part)",
    )
    extract.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; warnings and errors only"
    )
    merge = commands.add_parser(
        "merge",
        help="concatenate DNABERT-S and ESM embeddings per ID into _merged.pt (merge_data())",
        description="Merge X_DNABERT_S.pt with X_ESM.pt into X_merged.pt as VirNucPro's "
        "merge_data() does: {'ids', 'data': (n, 768 + hidden) float32} in DNABERT-S order, plus "
        "'labels' [1]/[0] with --label. Two files, or folders: every *_DNABERT_S.pt under "
        "DNABERT_S (searched recursively) is paired with the _ESM.pt of the same name under "
        "ESM (default: the same folder). Unlike the original, an ID present on one side only "
        "is an error (exit 1) unless --allow-missing, and then it is left out of 'ids' too.",
    )
    merge.add_argument("dnabert_s", metavar="DNABERT_S", help="_DNABERT_S.pt file or folder")
    merge.add_argument(
        "esm", nargs="?", metavar="ESM", help="_ESM.pt file or folder (folder default: DNABERT_S)"
    )
    merge.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="merged file (a folder: OUT/X_merged.pt); for folder inputs, the output folder",
    )
    merge.add_argument(
        "--label", choices=["viral", "host"], help="add 'labels': [1] (viral) or [0] (host)"
    )
    merge.add_argument(
        "--allow-missing",
        action="store_true",
        help="write the rows present on both sides when IDs (or, for folders, files) are missing "
        "on one side, instead of failing",
    )
    merge.add_argument(
        "--expect-dim",
        type=int,
        metavar="D",
        help="fail unless the ESM embeddings have D dimensions (1280 for FastESM2_650)",
    )
    merge.add_argument(
        "--overwrite", action="store_true", help="folders: redo merged files that already exist"
    )
    merge.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    verify = commands.add_parser(
        "verify",
        help="check _ESM.pt outputs against their FASTA and manifest",
        description="Check each output: loads with weights_only=True, exactly the keys "
        "proteins/data, 1-D float32 finite embeddings of one dimension (--expect-dim), and the "
        "IDs, count and order of its FASTA (from --fasta, the manifest, or X.fa beside "
        "X_ESM.pt). Prints a table; exit 1 when anything is wrong.",
    )
    verify.add_argument("paths", nargs="+", metavar="PATH", help="_ESM.pt files or folders")
    verify.add_argument("--fasta", help="the FASTA of a single PATH (default: found as above)")
    verify.add_argument("--expect-dim", type=int, metavar="D", help="embedding dimension")
    verify.add_argument("-q", "--quiet", action="store_true", help="only print problems")
    return parser


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
    for result in failed_files[:20]:
        print(f"  FAILED {result.job.fasta}: {result.message}", file=sys.stderr)
    if len(failed_files) > 20:
        print(f"  ... and {len(failed_files) - 20} more", file=sys.stderr)
    if stale := summary.count(STALE):
        print(
            f"  {stale} stale outputs kept (see warnings); --redo-stale rebuilds them",
            file=sys.stderr,
        )
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


def usage_error(message: str) -> int:
    print(f"fastesm-extract: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_extract(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    if args.toks_per_batch < 1 or args.truncation_seq_length < 1:
        return usage_error("--toks-per-batch and --truncation-seq-length must be positive")
    if args.split_every is not None:
        if args.split_every < 1:
            return usage_error("--split-every must be positive")
        if len(args.inputs) != 1 or args.output_dir is None:
            return usage_error("--split-every takes exactly one FASTA file and -o OUTDIR")
    try:
        devices = parse_devices(args.devices) if args.devices else None
        shard = parse_shard(args.shard) if args.shard else shard_from_environment()
    except (InputError, ModelLoadError) as error:
        return usage_error(str(error))
    if args.split_every is not None and shard is not None:
        return usage_error("--split-every cannot be sharded: run it once, with --devices")
    options = dict(
        model=args.model,
        revision=args.revision,
        device=args.device,
        devices=devices,
        dtype=args.dtype,
        toks_per_batch=args.toks_per_batch,
        truncation_seq_length=args.truncation_seq_length,
        overwrite=args.overwrite,
        redo_stale=args.redo_stale,
        accept_invalid=args.accept_invalid,
        failure_log=args.failure_log,
        show_progress=not args.quiet,
    )
    try:
        with sigterm_as_interrupt(), logging_redirect_tqdm():
            if args.split_every is None:
                summary = extract_files(args.inputs, args.output_dir, shard=shard, **options)
            else:
                _, summary = extract_split(
                    args.inputs[0], args.output_dir, args.split_every, **options
                )
    except (InputError, ModelLoadError) as error:
        return usage_error(str(error))
    except FastaError as error:
        print(f"fastesm-extract: error: {error}", file=sys.stderr)
        return EXIT_FAILURES
    except OSError as error:  # e.g. a full disk while --split-every writes its parts
        where = f"{error.filename}: " if error.filename else ""
        print(
            f"fastesm-extract: error: {where}{error.strerror or error}; fix that and rerun "
            "(finished outputs are kept)",
            file=sys.stderr,
        )
        return EXIT_FAILURES
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (signals.Terminated)
        what = "terminated (SIGTERM)" if exit_status(interrupt) != 130 else "interrupted"
        print(
            f"fastesm-extract: {what}; finished outputs are kept, rerun to resume",
            file=sys.stderr,
        )
        return exit_status(interrupt)
    print_summary(summary)
    return EXIT_OK if summary.ok else EXIT_FAILURES


def print_merge_summary(outcomes: list[MergeOutcome]) -> None:
    failed = [outcome for outcome in outcomes if outcome.status == FAILED]
    written = sum(outcome.status == WRITTEN for outcome in outcomes)
    skipped = len(outcomes) - written - len(failed)
    print(
        f"fastesm-extract merge: {written} written, {skipped} skipped, {len(failed)} failed",
        file=sys.stderr,
    )
    for outcome in failed[:20]:
        print(f"  FAILED {outcome.message}", file=sys.stderr)
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more", file=sys.stderr)


def run_merge(args: argparse.Namespace) -> int:
    dnabert_s, output = Path(args.dnabert_s), Path(args.output)
    esm = Path(args.esm) if args.esm is not None else None
    if args.expect_dim is not None and args.expect_dim < 1:
        return usage_error("--expect-dim must be positive")
    options = dict(label=args.label, allow_missing=args.allow_missing, expect_dim=args.expect_dim)
    if dnabert_s.is_dir():
        if esm is not None and not esm.is_dir():
            return usage_error(f"{dnabert_s} is a folder, so ESM must be a folder too, not {esm}")
        try:
            outcomes = merge_folder(dnabert_s, esm, output, overwrite=args.overwrite, **options)
        except (MergeError, InputError) as error:
            return usage_error(str(error))
        print_merge_summary(outcomes)
        return EXIT_FAILURES if any(o.status == FAILED for o in outcomes) else EXIT_OK
    if esm is None or not esm.is_file() or not dnabert_s.is_file():
        missing = [str(p) for p in (dnabert_s, esm) if p is not None and not p.exists()]
        if missing:
            return usage_error(f"{', '.join(missing)} does not exist")
        return usage_error("give a DNABERT-S file and an ESM file, or a DNABERT-S folder")
    if output.is_dir():
        output = output / merged_name(dnabert_s)
    try:
        result = merge_files(dnabert_s, esm, output, **options)
    except InputError as error:
        return usage_error(str(error))
    except (MergeError, OSError) as error:
        print(f"fastesm-extract merge: error: {error}", file=sys.stderr)
        return EXIT_FAILURES
    labelled = f", labels {result.labels}" if result.labels is not None else ""
    missing = len(result.missing_in_esm) + len(result.missing_in_dnabert_s)
    left_out = f"; {missing} IDs on one side only left out" if missing else ""
    print(
        f"fastesm-extract merge: wrote {output}: {len(result.ids)} rows x "
        f"{result.data.shape[1]}{labelled}{left_out}",
        file=sys.stderr,
    )
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    outputs = find_outputs(args.paths)
    if not outputs:
        return usage_error("no _ESM.pt files found in " + ", ".join(args.paths))
    if args.fasta and len(outputs) != 1:
        return usage_error("--fasta goes with exactly one output")
    reports = [verify_output(output, args.fasta, args.expect_dim) for output in outputs]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars
    commands = {"extract": run_extract, "merge": run_merge, "verify": run_verify}
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
