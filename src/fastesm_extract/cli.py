"""Command-line front end (`fastesm-extract extract INPUT... [-o OUTDIR]`), nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .api import extract_files
from .jobs import InputError
from .model import DEFAULT_MODEL, ModelLoadError
from .pipeline import FAILED, RunSummary

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
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
        help="failure log (default OUTDIR or ./extraction_failures.log)",
    )
    extract.add_argument(
        "--overwrite",
        action="store_true",
        help="recompute outputs that already exist and are valid",
    )
    extract.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; warnings and errors only"
    )
    return parser


def print_summary(summary: RunSummary) -> None:
    failed_files = [result for result in summary.results if result.status == FAILED]
    print(
        f"fastesm-extract: {summary.count('written')} written, {summary.count('skipped')} "
        f"skipped, {len(failed_files)} failed files; {summary.records_embedded} records "
        f"embedded, {summary.records_failed} failed ({summary.seconds:.1f} s)",
        file=sys.stderr,
    )
    for result in failed_files[:20]:
        print(f"  FAILED {result.job.fasta}: {result.message}", file=sys.stderr)
    if len(failed_files) > 20:
        print(f"  ... and {len(failed_files) - 20} more", file=sys.stderr)
    if not summary.ok:
        print(f"  details: {summary.failure_log}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm.contrib.logging import logging_redirect_tqdm

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.toks_per_batch < 1 or args.truncation_seq_length < 1:
        print(
            "fastesm-extract: --toks-per-batch and --truncation-seq-length must be positive",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with logging_redirect_tqdm():
            summary = extract_files(
                args.inputs,
                args.output_dir,
                model=args.model,
                revision=args.revision,
                device=args.device,
                dtype=args.dtype,
                toks_per_batch=args.toks_per_batch,
                truncation_seq_length=args.truncation_seq_length,
                overwrite=args.overwrite,
                failure_log=args.failure_log,
                show_progress=not args.quiet,
            )
    except (InputError, ModelLoadError) as error:
        print(f"fastesm-extract: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "fastesm-extract: interrupted; finished outputs are kept, rerun to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print_summary(summary)
    return EXIT_OK if summary.ok else EXIT_FAILURES


if __name__ == "__main__":
    sys.exit(main())
