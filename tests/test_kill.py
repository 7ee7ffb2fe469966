"""Kill test: SIGKILL a real run at several moments, resume, and get the uninterrupted result."""

import random
import signal
import subprocess
import time

import pytest
from helpers import (
    cli_command,
    finished_outputs,
    random_proteins,
    subprocess_environment,
    write_fasta,
)

from fastesm_extract import extract_files

pytestmark = pytest.mark.e2e

N_FILES = 12


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_outputs(
    tiny_checkpoint, tiny_model, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(N_FILES):
        write_fasta(folder / f"output_{part}.fa", random_proteins(150, 50, 400, seed=part))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    # The uninterrupted run, in this process: the killed CLI runs must end up equal to it.
    assert extract_files([folder], reference, model=tiny_model, show_progress=False).ok
    assert len(finished_outputs(reference)) == N_FILES

    rng = random.Random(20261125)
    kills = 0
    for wait_for in (1, 4, 8):
        process = subprocess.Popen(
            cli_command(folder, resumed, tiny_checkpoint, "--device", "cpu"),
            env=subprocess_environment(),
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while (
            len(finished_outputs(resumed)) < wait_for
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # land anywhere: mid-batch, mid-write, between files
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    assert kills >= 2, "the run finished before it could be killed: make the workload larger"

    final = subprocess.run(
        cli_command(folder, resumed, tiny_checkpoint, "--device", "cpu"),
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    assert finished_outputs(resumed) == finished_outputs(reference)  # bitwise
    leftovers = [p.name for p in resumed.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
