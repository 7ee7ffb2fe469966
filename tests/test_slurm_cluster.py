"""The one-node test cluster dies with the test process that started it, and pytest never
installs Slurm: without it the cluster tests skip and say what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import slurm_cluster
from slurm_cluster import SlurmUnavailable, start_cluster

TESTS = Path(__file__).resolve().parent


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to collect it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_child(script: str, tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """Run `script` in a child Python until it prints the PIDs of what it started."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = [int(pid) for pid in child.stdout.readline().split()]
    return child, pids


def sigkill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def assert_all_end_within(seconds: float, pids: list[int]) -> None:
    deadline = time.monotonic() + seconds
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:  # leave nothing behind, then fail
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_missing_slurm_is_a_skip_reason_never_an_install(tmp_path, monkeypatch):
    def no_commands_run(*args, **kwargs):
        raise AssertionError(f"the test harness ran {args[0]}")

    monkeypatch.setattr(slurm_cluster, "SEARCH_PATH", str(tmp_path))  # nothing found there
    monkeypatch.setattr(slurm_cluster.subprocess, "run", no_commands_run)
    with pytest.raises(SlurmUnavailable) as unavailable:
        start_cluster(tmp_path / "cluster")
    reason = str(unavailable.value)
    assert "munged, slurmctld, slurmd, sbatch" in reason  # what is missing ...
    assert "apt-get install slurm-wlm munge" in reason and ".ci/run" in reason  # ... and how
    assert not (tmp_path / "cluster").exists()  # nothing started


@pytest.mark.e2e
def test_what_a_killed_test_process_started_ends_with_it_without_slurm(tmp_path):
    # A daemon started like the cluster's, and a detached process that names the cluster's
    # SLURM_CONF the way job steps do: the kernel ends the first, the reaper the second.
    child, pids = start_child(
        """
        import os, subprocess, sys
        from slurm_cluster import REAPER, die_with_this_process
        conf = os.path.join(sys.argv[1], "slurm.conf")
        reaper = subprocess.Popen([sys.executable, str(REAPER), conf], stdin=subprocess.PIPE,
                                  start_new_session=True)
        daemon = subprocess.Popen(["sleep", "600"], start_new_session=True,
                                  preexec_fn=die_with_this_process())
        step = subprocess.Popen(["sleep", "600"], start_new_session=True,
                                env={**os.environ, "SLURM_CONF": conf})
        print(daemon.pid, step.pid, reaper.pid, flush=True)
        reaper.wait()
        """,
        tmp_path,
    )
    assert len(pids) == 3 and all(map(alive, pids))
    sigkill(child)
    assert_all_end_within(5, pids)


@pytest.mark.slurm
def test_a_cluster_with_a_running_job_ends_with_the_killed_test_process(tmp_path):
    try:
        slurm_cluster.check_slurm_installed()
    except SlurmUnavailable as reason:
        pytest.skip(f"no Slurm here: {reason}")
    child, pids = start_child(
        """
        import sys, time
        from pathlib import Path
        from slurm_cluster import start_cluster
        from slurm_reaper import processes_using
        root = Path(sys.argv[1])
        cluster = start_cluster(root)
        (root / "job.sh").write_text("#!/bin/bash\\nsleep 600\\n")
        job = cluster.sbatch(root / "job.sh", env={}, cwd=root)
        conf = cluster.env["SLURM_CONF"]
        deadline = time.monotonic() + 60
        while len(processes_using(conf)) < 7 and time.monotonic() < deadline:
            time.sleep(0.1)  # 3 daemons, slurmctld's helper, the job's step, shell and sleep
        print(*[d.pid for d in cluster.daemons], *processes_using(conf), flush=True)
        time.sleep(600)
        """,
        tmp_path,
    )
    try:
        names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in set(pids))
        assert set(names) >= {"munged", "slurmctld", "slurmd", "slurmstepd", "sleep"}, names
    finally:
        sigkill(child)
    assert_all_end_within(10, pids)
