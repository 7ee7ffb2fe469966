"""The shipped Snakemake workflow (workflow/Snakefile), run by Snakemake from PyPI: on the
local executor, killed mid-run and resumed by `--rerun-incomplete`; in place over a training
folder of another model's features (the tool's stale rule, not file times: stopped with the
list, rebuilt with `redo_stale`, one log per rule); and on the real one-node Slurm cluster
through the Slurm executor plugin, one cluster job per protein file. Outputs are checked
against an oracle: IDs from the FASTA by Biopython, merged rows = torch.cat of the
torch.load'ed DNABERT-S and ESM rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from Bio import SeqIO
from cluster_helpers import SECONDS_PER_BATCH
from helpers import random_proteins, subprocess_environment, write_fasta

from fastesm_extract.disk.manifest import is_complete, read_manifest
from fastesm_extract.disk.store import save_embeddings_atomic

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
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


def check_merged(fasta: Path, dnabert_s: Path, esm: Path, merged: Path, width: int) -> None:
    """The ESM output holds the FASTA's IDs (Biopython) at `width`, and each merged row is
    torch.cat of the DNABERT-S row and the ESM row of its ID, both read with torch.load."""
    fasta_ids = [record.id for record in SeqIO.parse(fasta, "fasta")]
    esm_content = torch.load(esm, weights_only=True)
    nucleotide = torch.load(dnabert_s, weights_only=True)
    content = torch.load(merged, weights_only=True)
    assert esm_content["proteins"] == fasta_ids
    assert {tuple(row.shape) for row in esm_content["data"]} == {(width,)}
    assert content["ids"] == nucleotide["nucleotide"] and sorted(content["ids"]) == sorted(
        fasta_ids
    )
    assert content["data"].shape == (len(fasta_ids), DNABERT_S_WIDTH + width)
    protein_row = dict(zip(esm_content["proteins"], esm_content["data"]))
    for row, seq_id, entry in zip(content["data"], nucleotide["nucleotide"], nucleotide["data"]):
        expected = torch.cat((torch.tensor(entry["mean_representation"]), protein_row[seq_id]))
        assert torch.equal(row, expected), seq_id


def check_finished(root: Path, parts: int) -> None:
    """Every part's ESM output (manifest complete) and merged file, and nothing left over."""
    names = [f"{'more/' if p == parts - 1 else ''}output_{p}" for p in range(parts)]
    for name in names:
        esm = root / "esm" / f"{name}_ESM.pt"
        assert is_complete(read_manifest(esm)), esm
        logs = root / "esm" / "logs" / "extract"
        summary = json.loads((logs / f"{name}.summary.json").read_text())
        assert summary["exit_status"] == 0, summary
        merged = root / "merged" / f"{name}_merged.pt"
        assert torch.load(merged, weights_only=True)["labels"] == [1]
        dnabert_s = root / "nucleotide" / f"{name}_DNABERT_S.pt"
        check_merged(root / "proteins" / f"{name}.fa", dnabert_s, esm, merged, 32)
    leftovers = [*(root / "esm").rglob("*.lock"), *(root / "esm").rglob(".tmp*")]
    assert leftovers == []


@pytest.mark.e2e
def test_local_run_killed_mid_job_is_resumed_without_recomputing_finished_outputs(
    cluster_checkpoint, tmp_path
):
    make_project(tmp_path, cluster_checkpoint, parts=2)
    slow = environment(**{SECONDS_PER_BATCH: "3"})
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
        time.sleep(0.5)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and its job, as a node crash would
        run.wait()
    finished = sorted(esm.rglob("*_ESM.pt")) + sorted((tmp_path / "merged").rglob("*_merged.pt"))
    assert len(list(esm.rglob("*_ESM.pt"))) == 1  # the other part's job was killed mid-run
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
    check_finished(tmp_path, 2)
    assert snapshot(finished) == before  # finished outputs neither recomputed nor rewritten


def in_place_project(root: Path, checkpoint: Path) -> Path:
    """A training folder as VirNucPro leaves it: protein parts, another model's 2560-dim
    `_ESM.pt` (no manifest, written after the FASTA, so newer by file time), DNABERT-S
    files and 3328-wide merged files, all in one folder the workflow reads and writes."""
    config_file = make_project(root, checkpoint, parts=2)
    train = root / "train"
    train.mkdir()
    for part in range(2):
        where = "more/" if part == 1 else ""
        (train / where).mkdir(exist_ok=True)
        fasta = root / "proteins" / where / f"output_{part}.fa"
        ids = [record.id for record in SeqIO.parse(fasta, "fasta")]
        shutil.copy(fasta, train / where / fasta.name)
        shutil.copy(root / "nucleotide" / where / f"output_{part}_DNABERT_S.pt", train / where)
        old = torch.randn(len(ids), 2560, generator=torch.Generator().manual_seed(50 + part))
        save_embeddings_atomic(train / where / f"output_{part}_ESM.pt", ids, list(old))
        torch.save(
            {"ids": ids, "data": torch.ones(len(ids), 3328)},
            train / where / f"output_{part}_merged.pt",
        )
    config = yaml.safe_load(config_file.read_text())
    config.update(proteins=str(train), dnabert_s=str(train), esm_out=str(train))
    config.update(merged_out=str(train))
    config_file.write_text(yaml.safe_dump(config))
    return train


@pytest.mark.e2e
def test_in_place_another_models_features_stop_the_workflow_until_redo_stale(
    cluster_checkpoint, tmp_path
):
    train = in_place_project(tmp_path, cluster_checkpoint)
    names = ["output_0", "more/output_1"]
    features = sorted(train.rglob("*_ESM.pt")) + sorted(train.rglob("*_merged.pt"))
    before = snapshot(features)

    # 1. The tool's stale rule, not file times: the workflow stops before any job, listing
    #    the stale outputs and the way out; nothing is deleted or rewritten.
    stopped = subprocess.run(
        snakemake_command(tmp_path),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stopped.returncode == 1, stopped.stderr[-3000:]
    assert "2 stale outputs (another model or truncation) kept:" in stopped.stderr
    for name in names:
        listed = re.search(
            rf"^  {re.escape(str(train))}/{name}_ESM\.pt: (.*)$", stopped.stderr, re.M
        )
        assert listed and "2560 dimensions, this model gives 32" in listed[1], stopped.stderr
    assert "set redo_stale: true (or --config redo_stale=true)" in stopped.stderr
    assert snapshot(features) == before
    assert not (train / "logs").exists()  # no job ran

    # 2. redo_stale: every part re-extracted and re-merged; one log per rule.
    redone = subprocess.run(
        snakemake_command(tmp_path, "--config", "redo_stale=true"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert redone.returncode == 0, redone.stderr[-3000:]
    for name in names:
        esm, merged = train / f"{name}_ESM.pt", train / f"{name}_merged.pt"
        assert read_manifest(esm)["model"]["hidden_size"] == 32 and is_complete(read_manifest(esm))
        check_merged(train / f"{name}.fa", train / f"{name}_DNABERT_S.pt", esm, merged, 32)
        extract_log = (train / "logs" / "extract" / f"{name}.log").read_text()
        merge_log = (train / "logs" / "merge" / f"{name}.log").read_text()
        assert "rebuilt" in extract_log or "stale" in extract_log, extract_log
        assert f"wrote {merged}: 6 rows x {DNABERT_S_WIDTH + 32}" in merge_log, merge_log
        summary = json.loads((train / "logs" / "extract" / f"{name}.summary.json").read_text())
        assert summary["exit_status"] == 0 and summary["files"] == {"written": 1}, summary

    # 3. A rerun: the plan finds every output current, so no job runs and nothing changes.
    done = sorted(train.rglob("*_ESM.pt")) + sorted(train.rglob("*_merged.pt"))
    after = snapshot(done)
    rerun = subprocess.run(
        snakemake_command(tmp_path),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    assert snapshot(done) == after


def cluster_jobs(cluster, workdir: Path) -> list[dict[str, str]]:
    """`scontrol show job` records of the jobs that ran in `workdir`."""
    shown = cluster.command("scontrol", "--oneliner", "show", "job", check=False).stdout
    records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.splitlines()]
    return [r for r in records if r.get("WorkDir") == str(workdir)]


def srun_shim(folder: Path, cluster_env: dict[str, str]) -> Path:
    """An `srun` that finds the test cluster's slurm.conf. Inside a job, the plugin runs the
    rule with `srun` after removing every SLURM_* variable, SLURM_CONF included: a real
    cluster's srun finds its configuration in /etc, the test cluster's is elsewhere."""
    folder.mkdir()
    real = shutil.which("srun", path=cluster_env["PATH"])
    shim = folder / "srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={cluster_env["SLURM_CONF"]} exec {real} "$@"\n')
    shim.chmod(0o755)
    return folder


@pytest.mark.slurm
def test_slurm_executor_runs_one_gpu_job_per_part_on_the_cluster(
    slurm_cluster, cluster_checkpoint, tmp_path
):
    # The test cluster's node has two (fake) GPUs: the rule asks for README's `gpu:1`.
    make_project(tmp_path, cluster_checkpoint, parts=2, gres="gpu:1")
    shims = srun_shim(tmp_path / "shims", slurm_cluster.env)
    env = {
        **environment(),
        "SLURM_CONF": slurm_cluster.env["SLURM_CONF"],
        "PATH": os.pathsep.join(
            [str(shims), str(Path(sys.executable).parent), slurm_cluster.env["PATH"]]
        ),
    }
    run = subprocess.run(
        snakemake_command(
            tmp_path,
            "--executor",
            "slurm",
            "--jobs",
            "2",
            "--slurm-no-account",
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "1",
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    check_finished(tmp_path, 2)
    jobs = cluster_jobs(slurm_cluster, tmp_path)
    assert len(jobs) == 2, jobs  # one cluster job per protein part; merges run locally
    for job in jobs:
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0"
        assert job["TresPerNode"] == "gres:gpu:1", job  # README's --gres=gpu:1
