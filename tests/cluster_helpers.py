"""Shared pieces of the Slurm and torchrun tests: the documented scripts (README.md and
docs/*.md, where the cluster scripts now live), a checkpoint, outputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from fast_esm_checkpoint import REMOTE_DIR, build_fast_esm_checkpoint
from helpers import random_proteins, write_fasta

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAUSING_MODELING_FILE = REMOTE_DIR / "modeling_slow_fast_esm.py"
# The pausing checkpoint waits this many seconds (an environment variable) before each batch.
SECONDS_PER_BATCH = "FASTESM_TEST_SECONDS_PER_BATCH"


def readme_block(containing: str) -> str:
    """The one fenced code block of the documentation (README.md and docs/) that contains
    `containing`, as written there."""
    text = "\n".join(path.read_text() for path in DOCUMENTS)
    blocks = re.findall(r"^```\w*\n(.*?)^```$", text, flags=re.S | re.M)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"the documentation has {len(found)} code blocks with {containing!r}"
    return found[0]


def write_readme_script(containing: str, path: Path) -> Path:
    path.write_text(readme_block(containing))
    path.chmod(0o755)
    return path


def build_pausing_checkpoint(out: Path) -> Path:
    """A FastESM-shaped `trust_remote_code` checkpoint (as FastESM2_650 is) whose forward pass
    waits FASTESM_TEST_SECONDS_PER_BATCH seconds first (0 when unset): the same embeddings,
    slow on demand, so Slurm can end a run mid-way without the CPU doing the waiting."""
    folder = build_fast_esm_checkpoint(out, hidden_size=32, num_heads=4, attn_backend="sdpa")
    shutil.copyfile(PAUSING_MODELING_FILE, folder / PAUSING_MODELING_FILE.name)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "modeling_slow_fast_esm.SlowFastEsmModel"
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def make_protein_folder(folder: Path, files: int, records: int) -> Path:
    """`files` FASTA files of `records` proteins (about 2 batches each), two in a sub-folder."""
    for part in range(files):
        where = folder / "more" if part >= files - 2 else folder
        where.mkdir(parents=True, exist_ok=True)
        write_fasta(where / f"output_{part}.fa", random_proteins(records, 40, 160, seed=part))
    return folder


def esm_outputs(folder: Path) -> dict[str, bytes]:
    """Bytes of every `*_ESM.pt` under `folder`, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*_ESM.pt"))}


def leftovers(folder: Path) -> list[str]:
    """Temporary files (`.tmp-*`) and locks (`*.lock`) a run left anywhere under `folder`."""
    found = [*folder.rglob(".tmp*"), *folder.rglob("*.lock")]
    return sorted(str(p.relative_to(folder)) for p in found)
