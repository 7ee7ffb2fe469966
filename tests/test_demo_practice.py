"""README's practice of the migration with the demo checkpoint, run as written (each line in
a shell, its documented exit status checked) on a training folder of ESM2-3B features; the
merged rows are checked against an oracle built from the files with torch.load and the
FASTA's IDs read by Biopython."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from Bio import SeqIO
from helpers import random_proteins, subprocess_environment, write_fasta
from test_merge import random_block, write_dnabert_s

from fastesm_extract.disk.store import save_embeddings_atomic

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIM, DNABERT_S_DIM = 320, 768


def practice_block() -> list[tuple[str, int | None]]:
    """README's practice block: each command line and the exit status its comment says."""
    section = (ROOT / "README.md").read_text().split("### Practising the migration", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.strip().splitlines():
        documented = re.search(r"# exit (\d)", line)
        lines.append((line, int(documented[1]) if documented else None))
    return lines


def training_folder(folder: Path) -> None:
    """Two parts as a VirNucPro training folder holds them: protein FASTA, 2560-dim ESM2-3B
    features without manifest, DNABERT-S features in another order, 3328-wide merged files."""
    folder.mkdir()
    for index, stem in enumerate(("output_1", "output_2")):
        records = random_proteins(7, 10, 60, seed=40 + index)
        ids = [record_id for record_id, _ in records]
        write_fasta(folder / f"{stem}.fa", records)
        save_embeddings_atomic(folder / f"{stem}_ESM.pt", ids, list(random_block(7, 2560, index)))
        write_dnabert_s(folder / f"{stem}_DNABERT_S.pt", ids[::-1], random_block(7, 768, 9))
        torch.save({"ids": ids, "data": torch.ones(7, 3328)}, folder / f"{stem}_merged.pt")


@pytest.mark.e2e
def test_readme_demo_practice_runs_as_written(tmp_path):
    training_folder(tmp_path / "train")
    bin_folder = str(Path(sys.executable).parent)  # `python` and `fastesm-extract`
    env = {**subprocess_environment(), "PATH": os.pathsep.join([bin_folder, os.environ["PATH"]])}
    lines = practice_block()
    assert [line.split()[:2] for line, _ in lines] == [
        ["python", "-m"],
        ["mkdir", "practice"],
        ["fastesm-extract", "extract"],
        ["fastesm-extract", "extract"],
        ["fastesm-extract", "merge"],
        ["fastesm-extract", "verify"],
    ]
    for line, documented in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == (documented or 0), (line, done.stdout, done.stderr[-3000:])

    practice, merged_folder = tmp_path / "practice", tmp_path / "practice_merged"
    assert sorted(p.name for p in merged_folder.glob("*.pt")) == ["output_1_merged.pt"]
    fasta_ids = [record.id for record in SeqIO.parse(practice / "output_1.fa", "fasta")]
    esm = torch.load(practice / "output_1_ESM.pt", weights_only=True)
    dnabert_s = torch.load(practice / "output_1_DNABERT_S.pt", weights_only=True)
    merged = torch.load(merged_folder / "output_1_merged.pt", weights_only=True)
    assert esm["proteins"] == fasta_ids  # the stale 2560-dim file rebuilt by the demo model
    assert {tuple(row.shape) for row in esm["data"]} == {(DEMO_DIM,)}
    assert merged["ids"] == dnabert_s["nucleotide"] == fasta_ids[::-1]
    assert merged["labels"] == [1]
    assert merged["data"].shape == (7, DNABERT_S_DIM + DEMO_DIM) == (7, 1088)
    protein_row = dict(zip(esm["proteins"], esm["data"]))
    for row, seq_id, entry in zip(merged["data"], dnabert_s["nucleotide"], dnabert_s["data"]):
        nucleotide = torch.tensor(entry["mean_representation"], dtype=torch.float32)
        assert torch.equal(row, torch.cat((nucleotide, protein_row[seq_id])))
    # The training folder itself is untouched: the practice works on a copy.
    assert torch.load(tmp_path / "train" / "output_1_ESM.pt", weights_only=True)["data"][
        0
    ].shape == (2560,)
