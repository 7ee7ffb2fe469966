"""The shipped Snakemake workflow (workflow/Snakefile), run by Snakemake from PyPI: on the
local executor, killed mid-run and resumed by `--rerun-incomplete`, and on the real one-node
Slurm cluster through the Slurm executor plugin, one cluster job per protein file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from helpers import random_proteins, subprocess_environment, write_fasta

from fastesm_extract.manifest import is_complete, read_manifest

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SECONDS_PER_BATCH = "FASTESM_TEST_SECONDS_PER_BATCH"  # the pausing checkpoint's slow-down
DNABERT_S_WIDTH = 768


def make_project(root: Path, checkpoint: Path, parts: int, gres: str = "") -> Path:
    """Protein parts with their DNABERT-S files (VirNucPro's format), and a config file."""
    proteins, nucleotide = root / "proteins", root / "nucleotide"
    for part in range(parts):
        where = "more/" if part == parts - 1 else ""  # a part in a sub-folder keeps it
        records = random_proteins(6, 20, 60, seed=part)
        (proteins / where).mkdir(parents=True, exist_ok=True)
        (nucleotide / where).mkdir(parents=True, exist_ok=True)
        write_fasta(proteins / where / f"output_{part}.fa", records)
        ids = [record_id for record_id, _ in records]
        block = torch.randn(
            len(ids), DNABERT_S_WIDTH, generator=torch.Generator().manual_seed(part)
        )
        data = [{"label": i, "mean_representation": row} for i, row in zip(ids, block.tolist())]
        torch.save(
            {"nucleotide": ids, "data": data}, nucleotide / where / f"output_{part}_DNABERT_S.pt"
        )
    config = yaml.safe_load((ROOT / "workflow" / "config.yaml").read_text())
    config.update(
        proteins=str(proteins),
        dnabert_s=str(nucleotide),
        esm_out=str(root / "esm"),
        merged_out=str(root / "merged"),
        model=str(checkpoint),
        device="cpu",
        expect_dim=32,
        slurm={"gres": gres, "cpus_per_task": 1, "runtime_minutes": 10, "mem_mb": 500},
    )
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "config.yaml"


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**subprocess_environment(), "PATH": path, **extra}


def snakemake_command(root: Path, *options: str) -> list[str]:
    return [
        str(SNAKEMAKE),
        "-s",
        str(SNAKEFILE),
        "--configfile",
        str(root / "config.yaml"),
        "-d",
        str(root),
        "--cores",
        "1",
        *options,
    ]


def snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in paths}


def check_finished(root: Path, parts: int) -> None:
    """Every part's ESM output (manifest complete) and merged file, and nothing left over."""
    names = [f"{'more/' if p == parts - 1 else ''}output_{p}" for p in range(parts)]
    for name in names:
        esm = root / "esm" / f"{name}_ESM.pt"
        assert is_complete(read_manifest(esm)), esm
        merged = torch.load(root / "merged" / f"{name}_merged.pt", weights_only=True)
        assert merged["data"].shape == (6, DNABERT_S_WIDTH + 32) and merged["labels"] == [1]
    leftovers = [*(root / "esm").rglob("*.lock"), *(root / "esm").rglob(".tmp*")]
    assert leftovers == []


def test_local_run_killed_mid_job_is_resumed_without_recomputing_finished_outputs(
    cluster_checkpoint, tmp_path
):
    make_project(tmp_path, cluster_checkpoint, parts=3)
    slow = environment(**{SECONDS_PER_BATCH: "4"})
    run = subprocess.Popen(
        snakemake_command(tmp_path),
        env=slow,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    esm = tmp_path / "esm"
    try:
        deadline = time.monotonic() + 240
        while True:  # one part finished and the next part's job running: kill everything
            assert run.poll() is None and time.monotonic() < deadline
            done = [p for p in esm.rglob("*_ESM.pt")]
            started = list((esm / "logs").rglob("*.log")) if (esm / "logs").exists() else []
            if len(done) >= 1 and len(started) > len(done):
                break
            time.sleep(0.2)
        time.sleep(2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and its job, as a node crash would
        run.wait()
    finished = sorted(esm.rglob("*_ESM.pt")) + sorted((tmp_path / "merged").rglob("*_merged.pt"))
    assert 1 <= len(list(esm.rglob("*_ESM.pt"))) < 3
    before = snapshot(finished)

    subprocess.run(
        snakemake_command(tmp_path, "--unlock"),
        env=environment(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    rerun = subprocess.run(
        snakemake_command(tmp_path, "--rerun-incomplete"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    check_finished(tmp_path, 3)
    assert snapshot(finished) == before  # finished outputs neither recomputed nor rewritten
