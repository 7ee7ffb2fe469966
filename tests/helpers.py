"""Small test helpers: FASTA writing and deterministic random proteins."""

import hashlib
import os
import re
import sys
from pathlib import Path

import torch


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    """Write `(header, sequence)` pairs as FASTA, sequences wrapped at 60 columns."""
    lines = []
    for header, sequence in records:
        lines.append(f">{header}")
        lines += [sequence[i : i + 60] for i in range(0, len(sequence), 60)] or [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def random_proteins(count: int, low: int, high: int, seed: int = 0) -> list[tuple[str, str]]:
    """Deterministic random proteins `(id, sequence)` with lengths in [low, high]."""
    generator = torch.Generator().manual_seed(seed)
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    records = []
    for index in range(count):
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        picks = torch.randint(0, len(alphabet), (length,), generator=generator).tolist()
        records.append((f"prot_{seed}_{index}", "".join(alphabet[p] for p in picks)))
    return records


def cli_command(folder: Path, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    """The installed `fastesm-extract extract` command line, quiet, for subprocess tests."""
    script = Path(sys.executable).parent / "fastesm-extract"
    return [
        str(script),
        "extract",
        str(folder),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--quiet",
        *extra,
    ]


def subprocess_environment() -> dict:
    """Offline, one thread per process: runs compare bitwise across processes."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def finished_outputs(folder: Path) -> dict[str, bytes]:
    """Bytes of every `*_ESM.pt` directly in `folder`, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*_ESM.pt"))}


def sha256_hex(path: Path) -> str:
    """The file's SHA-256 by hashlib: the oracle for hashes the package records."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def says(text: str, phrase: str) -> bool:
    """Whether `text` holds `phrase` with nothing glued to its ends: a count stays a count
    ("2 failed" is not in "12 failed", "gives 128" not in "gives 1280")."""
    start = r"(?<![\w.])" if phrase[:1].isalnum() else ""
    end = r"(?!\w|\.\d)" if phrase[-1:].isalnum() else ""
    return re.search(start + re.escape(phrase) + end, text) is not None
