"""The command line's arguments (`fastesm-extract extract`, `merge`, `verify`, `audit`)."""

from __future__ import annotations

import argparse

from fastesm_extract.disk.layout import FAILURE_LOG_NAME, PARTS_FOLDER
from fastesm_extract.model.load import DEFAULT_MODEL
from fastesm_extract.model.reference import REFERENCES
from fastesm_extract.running.audit import DEFAULT_MIN_COSINE, DEFAULT_SAMPLE
from fastesm_extract.settings import (
    DEFAULT_DEVICE,
    DEFAULT_TOKS_PER_BATCH,
    DEFAULT_TRUNCATION_SEQ_LENGTH,
    __version__,
)


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
    add_run_arguments(extract)
    extract.add_argument(
        "--dry-run",
        action="store_true",
        help="say what the run would do (the plan command) and exit, loading no model",
    )
    plan = commands.add_parser(
        "plan",
        help="say what `extract` with the same arguments would do, without loading the model",
        description="For each file and in totals: write, skip (current), rebuild (input "
        "changed, unfinished, damaged), stale (another model or truncation), invalid, locked "
        "by another run, this shard's share, and the output disk needed. Loads no model; "
        "exits as the run would (1 when outputs would stay stale or failed).",
    )
    add_run_arguments(plan)
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
        help="fail unless the ESM embeddings have D dimensions (1280 for FastESM2_650); "
        "without it, every ESM file of a folder merge must have the width most of them have",
    )
    merge.add_argument(
        "--dnabert-s-dim",
        type=int,
        default=768,
        metavar="D",
        help="width of the DNABERT-S embeddings (default 768)",
    )
    merge.add_argument(
        "--overwrite", action="store_true", help="folders: redo merged files that already exist"
    )
    merge.add_argument(
        "--redo-stale",
        action="store_true",
        help="folders: rebuild merged files of another width (another model's features, "
        "without manifest) instead of keeping them and exiting 1",
    )
    merge.add_argument(
        "--accept-stale",
        action="store_true",
        help="folders: exit 0 although stale merged files were kept (still reported)",
    )
    merge.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    verify = commands.add_parser(
        "verify",
        help="check _ESM.pt outputs, _merged.pt files and DNABERT-S inputs",
        description="Check each output: loads with weights_only=True, exactly the keys "
        "proteins/data, 1-D float32 finite embeddings of one dimension (--expect-dim), and the "
        "IDs, count and order of its FASTA (from --fasta, the manifest, or X.fa beside "
        "X_ESM.pt). _merged.pt files: one finite row per ID, 768 + --expect-dim wide, both "
        "inputs unchanged since the merge (else out of date); _DNABERT_S.pt files: 768 "
        "finite values per ID, entries aligned with the IDs. Prints a table; exit 1 when "
        "anything is wrong.",
    )
    verify.add_argument(
        "paths", nargs="+", metavar="PATH", help="_ESM.pt, _merged.pt, _DNABERT_S.pt or folders"
    )
    verify.add_argument("--fasta", help="the FASTA of a single PATH (default: found as above)")
    verify.add_argument("--expect-dim", type=int, metavar="D", help="ESM embedding dimension")
    verify.add_argument("-q", "--quiet", action="store_true", help="only print problems")
    add_audit_arguments(commands)
    return parser


def add_audit_arguments(commands) -> None:
    """`audit PATH... [--sample N] [--seed S] [--model M] [--device D] ...`"""
    audit = commands.add_parser(
        "audit",
        help="re-embed a sample of each output's records one at a time and compare",
        description="For each _ESM.pt (its input and model found through its manifest), "
        "re-embed a deterministic sample of its records (the longest always among them) one "
        "at a time, without padding, in float32, and compare with the stored rows: prints "
        "per file the records checked, the minimum cosine and the largest absolute "
        "difference. Exit 0 when every sampled row is within tolerance, 1 naming each file "
        "and record that is not, 2 when the outputs cannot be audited as asked. Costs one "
        "forward pass per sampled record (per reference).",
    )
    audit.add_argument("paths", nargs="+", metavar="PATH", help="_ESM.pt files or folders")
    audit.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"records re-embedded per file (default {DEFAULT_SAMPLE})",
    )
    audit.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed")
    audit.add_argument(
        "--model",
        help="the model to re-embed with (default: the one the manifests name; another "
        "model is refused)",
    )
    audit.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        help=f"cuda, cuda:N or cpu (default {DEFAULT_DEVICE}; the model runs in float32)",
    )
    audit.add_argument(
        "--min-cosine",
        type=float,
        default=DEFAULT_MIN_COSINE,
        metavar="C",
        help=f"tolerance: every sampled row's cosine >= C (default {DEFAULT_MIN_COSINE})",
    )
    audit.add_argument(
        "--reference",
        choices=list(REFERENCES),
        help="also compare with transformers' own EsmModel holding the same weights "
        "(ESM2-shaped checkpoints such as FastESM2_650): catches a bug the checkpoint's "
        "code has in its single-sequence path too",
    )
    audit.add_argument(
        "--summary-json", metavar="PATH", help="also write the audit as JSON to PATH"
    )
    audit.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `extract` and `plan` share."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA files or folders")
    for flag, what in (("include", "only the FASTA files"), ("exclude", "no FASTA file")):
        parser.add_argument(
            f"--{flag}",
            action="append",
            default=[],
            metavar="GLOB",
            help=f"in folders, take {what} whose name or path relative to the folder matches "
            "GLOB (repeatable; quote it: --exclude '*_nucleotide.fa'); files named as INPUT "
            "are always taken",
        )
    parser.add_argument(
        "-o",
        "--output-dir",
        metavar="OUTDIR",
        help="write outputs here, keeping folder layout (default: beside inputs)",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub ID or local checkpoint folder (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--revision", help="pin the model to a branch, tag or commit hash")
    parser.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        help=f"cuda, cuda:N or cpu (default {DEFAULT_DEVICE}; never falls back silently)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="one worker process per device, files shared dynamically: cuda:0,cuda:1 or all "
        "(every visible GPU); overrides --device",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="do only the K-th of N deterministic shares of the files (1-based); default from "
        "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or torchrun's RANK/WORLD_SIZE when set",
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", "float16", "bfloat16", "float32"],
        default="auto",
        help="auto: float16 on CUDA, float32 on CPU",
    )
    parser.add_argument(
        "--toks-per-batch",
        type=int,
        default=DEFAULT_TOKS_PER_BATCH,
        help=f"padded tokens per batch, special tokens included (default {DEFAULT_TOKS_PER_BATCH})",
    )
    parser.add_argument(
        "--truncation-seq-length",
        type=int,
        default=DEFAULT_TRUNCATION_SEQ_LENGTH,
        help=f"residues kept per sequence (default {DEFAULT_TRUNCATION_SEQ_LENGTH})",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the forward through torch.compile: faster on long GPU runs, after a "
        "compile of minutes per new length bucket (cached on disk); falls back to eager "
        "if compiling fails",
    )
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="with --compile: keep compiled artifacts in DIR (a shared folder lets later "
        "runs, workers and cluster jobs skip compiling; default: torch's, "
        "TORCHINDUCTOR_CACHE_DIR or /tmp/torchinductor_$USER)",
    )
    parser.add_argument(
        "--failure-log",
        metavar="PATH",
        help=f"failure log (default OUTDIR or ./{FAILURE_LOG_NAME})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="recompute outputs that already exist and are valid",
    )
    parser.add_argument(
        "--redo-stale",
        action="store_true",
        help="rebuild outputs made by another model (ID, revision, hidden size) or truncation "
        "length, as their manifest (<output>.json) or dimension shows (default: keep them, "
        "report them and exit 1)",
    )
    parser.add_argument(
        "--accept-stale",
        action="store_true",
        help="exit 0 although outputs of another model or truncation were kept (they are "
        "still reported)",
    )
    parser.add_argument(
        "--summary-json",
        metavar="PATH",
        help="also write the run's summary as JSON to PATH (files by status, records by "
        "failure kind, stale and rebuilt outputs, timings, exit status)",
    )
    parser.add_argument(
        "--accept-invalid",
        action="store_true",
        help="exit 0 when the only failures are records invalid as input (empty, bad "
        "characters, bad header); they are still logged and reported",
    )
    parser.add_argument(
        "--split-every",
        type=int,
        metavar="N",
        help="treat the one INPUT as a large FASTA: split it as VirNucPro's split_fasta_file() "
        f"into OUTDIR/{PARTS_FOLDER}/output_1.fa, output_2.fa, ... of N records and embed each "
        "into OUTDIR/output_K_ESM.pt (needs -o; resumes part by part)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar; warnings and errors only"
    )
