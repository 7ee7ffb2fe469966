"""The shipped Slurm job array (workflow/extract_array.sbatch, shown in docs/cluster.md), run
as it is on a real one-node Slurm cluster, on the CPU.

The cluster (tests/slurm_cluster.py) is started once per session; every job here submits
that file with `DEVICE=cpu` and a small remote-code checkpoint, and its outputs are
compared byte for byte with one process's run over the same folder.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
import torch
from Bio import SeqIO
from cluster_helpers import SECONDS_PER_BATCH, esm_outputs, leftovers
from helpers import subprocess_environment
from slurm_cluster import SlurmCluster, start_cluster

from fastesm_extract.disk.store import save_embeddings_atomic
from fastesm_extract.errors import InputError
from fastesm_extract.running.shards import Shard, shard_from_environment, shard_jobs
from fastesm_extract.running.sources import plan_jobs

pytestmark = pytest.mark.slurm

ARRAY_SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "extract_array.sbatch"
INFO_LINE = re.compile(r"\d\d:\d\d:\d\d INFO ")  # the run's log (the script has no --quiet)


def test_a_second_cluster_starts_beside_the_session_one_and_stops_exactly_its_daemons(
    slurm_cluster, tmp_path
):
    second = start_cluster(tmp_path / "second")
    pids = [daemon.pid for daemon in second.daemons]
    assert [Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids] == [
        "munged",
        "slurmctld",
        "slurmd",
    ]
    assert second.node_state() == "idle"
    second.stop()
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
    assert slurm_cluster.node_state() == "idle"  # the session's cluster is untouched


def submit_readme_array(
    cluster: SlurmCluster,
    workdir: Path,
    proteins: Path,
    checkpoint: Path,
    array: str,
    *options: str,
    extra_env: dict[str, str] | None = None,
) -> str:
    """`sbatch --array=ARRAY` the shipped script, as it is, on the CPU; returns the job ID."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **subprocess_environment(),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PROTEINS": str(proteins),
        "ESM_OUT": str(workdir / "esm"),
        "MODEL": str(checkpoint),
        "DEVICE": "cpu",
        **(extra_env or {}),
    }
    # The node has the machine's real CPUs (2 in CI): one per task instead of README's 4.
    return cluster.sbatch(
        ARRAY_SCRIPT, f"--array={array}", "--cpus-per-task=1", *options, env=env, cwd=workdir
    )


def task_log(workdir: Path, job: str, task: str) -> str:
    return (workdir / f"fastesm_{job}_{task}.log").read_text()


def states(tasks: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    return {task: (fields["JobState"], fields["ExitCode"]) for task, fields in tasks.items()}


def folder_contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def finished_outputs_only(reference: dict[str, bytes]) -> list[str]:
    """What an output folder holds after a complete run: outputs and their manifests."""
    return sorted([*reference, *(f"{name}.json" for name in reference)])


def test_readme_job_array_outputs_equal_one_process_run(
    slurm_cluster, cluster_proteins, cluster_checkpoint, cluster_reference, tmp_path
):
    job = submit_readme_array(slurm_cluster, tmp_path, cluster_proteins, cluster_checkpoint, "1-4")
    tasks = slurm_cluster.wait(job, timeout=300)

    assert states(tasks) == {str(k): ("COMPLETED", "0:0") for k in range(1, 5)}
    assert esm_outputs(tmp_path / "esm") == cluster_reference  # bitwise, all 10 files
    assert folder_contents(tmp_path / "esm") == finished_outputs_only(cluster_reference)
    # 10 files in 4 shares of 3, 3, 2, 2: each task says what it did, in one summary line
    for task, share in zip("1234", (3, 3, 2, 2)):
        assert f"fastesm-extract: {share} written, 0 skipped, 0 failed files" in task_log(
            tmp_path, job, task
        )


ENV_SCRIPT = '#!/bin/bash\nenv | grep ^SLURM_ARRAY_TASK_ > "task_$SLURM_ARRAY_TASK_ID.env"\n'


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_array_forms_users_write_map_to_shards_or_are_refused(
    slurm_cluster, cluster_proteins, cluster_checkpoint, tmp_path
):
    # What each task of each form really gets from Slurm (a shell job: seconds, not minutes).
    forms = {"0-3": 4, "1-4": 4, "1-8%2": 8, "1,3,5": 3, "0-6:2": 4}
    script = tmp_path / "env.sh"
    script.write_text(ENV_SCRIPT)
    jobs = {}
    for form in forms:
        workdir = tmp_path / form.replace("%", "_throttle_").replace(",", "_").replace(":", "_")
        workdir.mkdir()
        jobs[form] = (workdir, slurm_cluster.sbatch(script, f"--array={form}", env={}, cwd=workdir))
    # README's script itself under a form it cannot map: every task refuses, nothing is written
    refused = submit_readme_array(
        slurm_cluster, tmp_path / "refused", cluster_proteins, cluster_checkpoint, "1,3,5"
    )

    for form, (workdir, job) in jobs.items():
        tasks = slurm_cluster.wait(job, timeout=120)
        assert len(tasks) == forms[form]
        assert set(states(tasks).values()) == {("COMPLETED", "0:0")}
        environments = [read_env(path) for path in sorted(workdir.glob("task_*.env"))]
        assert len(environments) == forms[form]
        if form in ("1,3,5", "0-6:2"):
            for environment in environments:
                with pytest.raises(InputError, match="not consecutive"):
                    shard_from_environment(environment)
        else:
            shards = sorted(map(shard_from_environment, environments), key=lambda s: s.index)
            assert shards == [Shard(k, forms[form], "SLURM") for k in range(forms[form])]
    assert {t["ArrayTaskThrottle"] for t in slurm_cluster.tasks(jobs["1-8%2"][1]).values()} == {"2"}

    tasks = slurm_cluster.wait(refused, timeout=300)
    assert states(tasks) == {k: ("FAILED", "2:0") for k in ("1", "3", "5")}
    for task in ("1", "3", "5"):
        log = task_log(tmp_path / "refused", refused, task)
        assert log.count("\n") == 1 and log.startswith("fastesm-extract: error: Slurm array task")
        assert "--array=1-3" in log and "--shard K/N" in log
    assert not (tmp_path / "refused" / "esm").exists()


def test_a_migration_keeps_another_models_outputs_until_submitted_with_redo_stale(
    slurm_cluster, cluster_proteins, cluster_checkpoint, cluster_reference, tmp_path
):
    out = tmp_path / "esm"
    generator = torch.Generator().manual_seed(3)
    for job in plan_jobs([cluster_proteins], out):  # ESM2-3B features, no manifest
        ids = [record.id for record in SeqIO.parse(job.fasta, "fasta")]
        job.output.parent.mkdir(parents=True, exist_ok=True)
        old = torch.randn(len(ids), 2560, generator=generator)
        save_embeddings_atomic(job.output, ids, list(old))
    old = esm_outputs(out)

    kept = submit_readme_array(slurm_cluster, tmp_path, cluster_proteins, cluster_checkpoint, "1-2")
    tasks = slurm_cluster.wait(kept, timeout=300)
    assert states(tasks) == {"1": ("FAILED", "1:0"), "2": ("FAILED", "1:0")}
    assert esm_outputs(out) == old  # kept, byte for byte
    for task, share in zip("12", (5, 5)):
        log = task_log(tmp_path, kept, task)
        assert f"{share} stale outputs kept, NOT current" in log, log
        assert "2560 dimensions, this model gives 32" in log and "--redo-stale" in log

    redone = submit_readme_array(
        slurm_cluster,
        tmp_path,
        cluster_proteins,
        cluster_checkpoint,
        "1-2",
        extra_env={"REDO_STALE": "1"},
    )
    tasks = slurm_cluster.wait(redone, timeout=300)
    assert states(tasks) == {"1": ("COMPLETED", "0:0"), "2": ("COMPLETED", "0:0")}
    assert esm_outputs(out) == cluster_reference  # bitwise what a fresh run writes
    assert folder_contents(out) == finished_outputs_only(cluster_reference)


def share_outputs(proteins: Path, out: Path, index: int, count: int) -> list[Path]:
    """The outputs task `index + 1` of a `1-count` array writes (the CLI's own sharding)."""
    return [job.output for job in shard_jobs(plan_jobs([proteins], out), Shard(index, count, ""))]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_scancel_and_time_limit_mid_run_then_resubmitting_completes_every_output(
    slurm_cluster, cluster_proteins, cluster_checkpoint, cluster_reference, tmp_path
):
    out = tmp_path / "esm"
    # First run, slowed down (25 s before each batch, 5 batches per task): task 1 is
    # cancelled once it has finished a file, task 2 runs into its 1-minute limit (Slurm checks
    # limits every 30 s, so it ends 60-90 s after it started), both mid-run.
    first = submit_readme_array(
        slurm_cluster,
        tmp_path,
        cluster_proteins,
        cluster_checkpoint,
        "1-2",
        "--time=1",
        extra_env={SECONDS_PER_BATCH: "25", "FASTESM_EXTRACT_LOG_INTERVAL_S": "5"},
    )
    task_1_outputs = share_outputs(cluster_proteins, out, 0, 2)
    wait_until(
        lambda: any(Path(f"{output}.json").exists() for output in task_1_outputs),
        120,
        "task 1's first output",
    )
    slurm_cluster.command("scancel", f"{first}_1")
    tasks = slurm_cluster.wait(first, timeout=150)

    assert tasks["1"]["JobState"] == "CANCELLED"
    assert tasks["2"]["JobState"] == "TIMEOUT" and tasks["2"]["Reason"] == "TimeLimit"
    assert "CANCELLED AT" in task_log(tmp_path, first, "1")
    assert "DUE TO TIME LIMIT" in task_log(tmp_path, first, "2")
    kept = esm_outputs(out)
    for share in (task_1_outputs, share_outputs(cluster_proteins, out, 1, 2)):
        assert 1 <= sum(output.exists() for output in share) < len(share)  # ended mid-run ...
    assert all(kept[name] == cluster_reference[name] for name in kept)  # ... kept whole files
    first_run = {task: (tasks[task]["ExitCode"], task_log(tmp_path, first, task)) for task in "12"}
    left_by_first_run = leftovers(out)

    # Resubmit the same array, not slowed down: it finishes the rest and cleans up.
    again = submit_readme_array(
        slurm_cluster, tmp_path, cluster_proteins, cluster_checkpoint, "1-2"
    )
    tasks = slurm_cluster.wait(again, timeout=300)
    assert states(tasks) == {"1": ("COMPLETED", "0:0"), "2": ("COMPLETED", "0:0")}
    assert esm_outputs(out) == cluster_reference  # bitwise, every file
    assert leftovers(out) == []
    assert folder_contents(out) == finished_outputs_only(cluster_reference)
    summary_line = re.compile(r"^fastesm-extract: \d+ written, (\d+) skipped", re.M)
    skipped = sum(
        int(summary_line.search(task_log(tmp_path, again, task))[1]) for task in ("1", "2")
    )
    assert skipped == len(kept)  # finished outputs were not recomputed

    # SIGTERM (time limit, scancel) ends a run like Ctrl-C: temporaries and locks
    # removed, one line, exit status 143, which Slurm records as ExitCode 143:0.
    for task, (exit_code, log) in first_run.items():
        # A batch job's log is not empty until it ends: progress lines while it ran.
        assert re.search(r"^\d\d:\d\d:\d\d INFO progress: \d+/\d+ files", log, re.M), log
        lines = [
            line
            for line in log.splitlines()
            if not line.startswith("slurmstepd") and not INFO_LINE.match(line)
        ]
        assert exit_code == "143:0", f"task {task}: {log}"
        assert len(lines) == 1 and lines[0].startswith("fastesm-extract: "), log
        assert "SIGTERM" in lines[0] and "rerun" in lines[0], log
    assert left_by_first_run == []
