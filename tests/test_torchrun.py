"""README's torchrun launches, run as written under a real `torchrun` with 2 CPU ranks.

Each rank takes its share from RANK/WORLD_SIZE; together the ranks' outputs must be the bytes
one process writes for the same folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import esm_outputs, leftovers, write_readme_script
from helpers import subprocess_environment

# The cluster fixtures (checkpoint, proteins, reference run) are the slurm lane's: one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cluster")]

TORCHRUN_SCRIPT = "exec torchrun"  # marks README's torchrun script
PYTHON_SCRIPT = "embed_shard.py PROTEINS ESM_OUT"  # marks README's Python script


def environment(**variables: str) -> dict[str, str]:
    """Offline, one thread per rank, and this virtual environment's torchrun first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**subprocess_environment(), "PATH": path, **variables}


def test_readme_torchrun_script_ranks_equal_one_process_run(
    cluster_proteins, cluster_checkpoint, cluster_reference, tmp_path
):
    script = write_readme_script(TORCHRUN_SCRIPT, tmp_path / "fastesm_torchrun.sh")
    env = environment(
        PROTEINS=str(cluster_proteins),
        ESM_OUT=str(tmp_path / "esm"),
        MODEL=str(cluster_checkpoint),
        DEVICE="cpu",
        GPUS="2",
    )
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert esm_outputs(tmp_path / "esm") == cluster_reference  # bitwise, all 10 files
    assert leftovers(tmp_path / "esm") == []
    # two ranks, 5 files each, each with its own one-line summary
    assert run.stderr.count("fastesm-extract: 5 written, 0 skipped, 0 failed files") == 2


def test_readme_python_script_under_torchrun_ranks_equal_one_process_run(
    cluster_proteins, cluster_checkpoint, cluster_reference, tmp_path
):
    script = write_readme_script(PYTHON_SCRIPT, tmp_path / "embed_shard.py")
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        str(cluster_proteins),
        str(tmp_path / "esm"),
        str(cluster_checkpoint),
        "cpu",
    ]
    run = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stderr[-3000:]
    assert esm_outputs(tmp_path / "esm") == cluster_reference
    assert leftovers(tmp_path / "esm") == []
    assert "shard 1/2 (torchrun): 5 files" in run.stderr  # each rank logged its share
    assert "shard 2/2 (torchrun): 5 files" in run.stderr
