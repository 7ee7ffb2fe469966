"""Every file name the tool reads or writes, stated once.

x.fa[.gz] -> x_ESM.pt -> x_ESM.pt.json (manifest), x_ESM.pt.lock (lock),
             .tmp-x_ESM.pt.<random>.part (temporary while writing)
big.fa --split-every N -> OUTDIR/parts/output_K.fa -> OUTDIR/output_K_ESM.pt
x_DNABERT_S.pt + x_ESM.pt -> x_merged.pt
an input with no valid record -> LOGDIR/.fastesm_invalid_inputs/<hash of its output path>.json
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from pathlib import Path

FASTA_SUFFIXES = (".fa", ".faa", ".fasta")
GZIP_SUFFIX = ".gz"
OUTPUT_SUFFIX = "_ESM.pt"
MANIFEST_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".part"
DNABERT_S_SUFFIX = "_DNABERT_S.pt"
MERGED_SUFFIX = "_merged.pt"
FAILURE_LOG_NAME = "extraction_failures.log"
INVALID_INPUTS_FOLDER = ".fastesm_invalid_inputs"  # beside the failure log
PARTS_FOLDER = "parts"
PART_PREFIX = "output_"
PART_NAME = re.compile(r"output_(\d+)\.fa")
PART_OUTPUT_NAME = re.compile(r"output_(\d+)_ESM\.pt")


def _without_gz(name: str) -> str:
    return name[: -len(GZIP_SUFFIX)] if name.lower().endswith(GZIP_SUFFIX) else name


def is_fasta_name(path: Path) -> bool:
    """`.fa`, `.faa` or `.fasta`, optionally `.gz`, in any case."""
    return _without_gz(path.name).lower().endswith(FASTA_SUFFIXES)


def output_stem(path: Path) -> str:
    """Input name without `.gz` and its FASTA extension: `output_1.fa.gz` -> `output_1`."""
    name = _without_gz(path.name)
    for suffix in FASTA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def output_name(fasta: Path) -> str:
    """`x.fa.gz` -> `x_ESM.pt`."""
    return output_stem(fasta) + OUTPUT_SUFFIX


def output_path_for(fasta: Path, output_dir: Path | None, relative_to: Path | None) -> Path:
    """`<stem>_ESM.pt` beside the input, or under `output_dir` keeping the folder layout
    below `relative_to` (the folder given as input; None for a file given directly)."""
    name = output_name(fasta)
    if output_dir is None:
        return fasta.parent / name
    if relative_to is None:
        return output_dir / name
    return output_dir / fasta.parent.relative_to(relative_to) / name


def is_output_name(path: Path) -> bool:
    return path.name.endswith(OUTPUT_SUFFIX)


def output_stem_of(output: Path) -> str:
    """`x_ESM.pt` -> `x`."""
    return output.name.removesuffix(OUTPUT_SUFFIX)


def fasta_candidates(output: Path) -> list[Path]:
    """The inputs `x_ESM.pt` may come from, in the folder beside it: `x.fa`, `x.fa.gz`, ..."""
    stem = output_stem_of(output)
    return [
        output.parent / name
        for suffix in FASTA_SUFFIXES
        for name in (stem + suffix, stem + suffix + GZIP_SUFFIX)
    ]


def _beside(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.name + suffix)


def manifest_path(output: str | Path) -> Path:
    """`x_ESM.pt` -> `x_ESM.pt.json`."""
    return _beside(output, MANIFEST_SUFFIX)


def invalid_input_record(failure_log: str | Path, output: str | Path) -> Path:
    """Where a run remembers that the input of `output` has no valid record: in a hidden
    folder beside the failure log holding its lines, never beside the input (no file named
    like an output appears there), one file per output path."""
    key = hashlib.sha256(os.fsencode(Path(output).resolve())).hexdigest()[:32]  # any bytes
    return Path(failure_log).parent / INVALID_INPUTS_FOLDER / f"{key}.json"


def lock_path(output: str | Path) -> Path:
    """`x_ESM.pt` -> `x_ESM.pt.lock`."""
    return _beside(output, LOCK_SUFFIX)


def temporary_path(path: Path, token: str) -> Path:
    """`x_ESM.pt` -> `.tmp-x_ESM.pt.<token>.part`, beside it."""
    return path.parent / f"{TEMP_PREFIX}{path.name}.{token}{TEMP_SUFFIX}"


def temporaries_of(path: Path) -> list[Path]:
    """The temporaries of `path` (for `x_ESM.pt` and for `x_ESM.pt.json` alike) now on disk."""
    pattern = f"{TEMP_PREFIX}{glob.escape(path.name)}.*{TEMP_SUFFIX}"
    return list(path.parent.glob(pattern))


def is_dnabert_s_name(path: Path) -> bool:
    return path.name.endswith(DNABERT_S_SUFFIX)


def dnabert_s_stem(path: Path) -> str:
    """`x_DNABERT_S.pt` -> `x`."""
    return path.name.removesuffix(DNABERT_S_SUFFIX)


def merged_name(dnabert_s_file: Path) -> str:
    """`output_1_DNABERT_S.pt` -> `output_1_merged.pt` (`x.pt` -> `x_merged.pt`)."""
    name = dnabert_s_file.name
    stem = dnabert_s_stem(dnabert_s_file) if is_dnabert_s_name(dnabert_s_file) else Path(name).stem
    return stem + MERGED_SUFFIX


def esm_partner(dnabert_s_file: Path, dnabert_s_dir: Path, esm_dir: Path) -> Path:
    """`dnabert_s_dir/sub/x_DNABERT_S.pt` -> `esm_dir/sub/x_ESM.pt`."""
    relative = dnabert_s_file.parent.relative_to(dnabert_s_dir)
    return esm_dir / relative / (dnabert_s_stem(dnabert_s_file) + OUTPUT_SUFFIX)


def dnabert_s_partner(esm_file: Path, esm_dir: Path, dnabert_s_dir: Path) -> Path:
    """`esm_dir/sub/x_ESM.pt` -> `dnabert_s_dir/sub/x_DNABERT_S.pt`."""
    relative = esm_file.parent.relative_to(esm_dir)
    return dnabert_s_dir / relative / (output_stem_of(esm_file) + DNABERT_S_SUFFIX)


def parts_folder(output_dir: Path) -> Path:
    return output_dir / PARTS_FOLDER


def part_name(index: int) -> str:
    """`3` -> `output_3.fa`, the name VirNucPro's `split_fasta_file()` gives part 3."""
    return f"{PART_PREFIX}{index}.fa"


def part_output_name(index: int) -> str:
    """`3` -> `output_3_ESM.pt`."""
    return f"{PART_PREFIX}{index}{OUTPUT_SUFFIX}"


def numbered(folder: Path, pattern: re.Pattern, above: int = 0) -> list[str]:
    """Names in `folder` matching `pattern` whose number is above `above`, in number order."""
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p.name) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))
    ]
    return [name for number, name in sorted(found) if number > above]
