"""One output is computed by one run at a time; dead runs' locks never block."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from helpers import (
    cli_command,
    finished_outputs,
    random_proteins,
    says,
    subprocess_environment,
    write_fasta,
)

from fastesm_extract import extract_files, load_embeddings
from fastesm_extract.disk.layout import lock_path
from fastesm_extract.disk.locks import OutputLocks
from fastesm_extract.disk.manifest import is_complete, read_manifest


def lock_content(host: str, pid: int) -> bytes:
    return json.dumps({"host": host, "pid": pid, "since": "2026-01-01T00:00:00Z"}).encode()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_lock_is_held_by_one_owner_until_released(tmp_path):
    output = tmp_path / "x_ESM.pt"
    first, second = OutputLocks(), OutputLocks()
    assert first.try_acquire(output) is None
    holder = second.try_acquire(output)
    assert holder is not None and socket.gethostname() in holder and str(os.getpid()) in holder
    first.release(output)
    assert not lock_path(output).exists()
    assert second.try_acquire(output) is None
    second.close()
    assert not lock_path(output).exists()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path):
    output = tmp_path / "x_ESM.pt"
    lock_path(output).write_bytes(lock_content(socket.gethostname(), dead_pid()))
    locks = OutputLocks()
    assert locks.try_acquire(output) is None
    assert json.loads(lock_path(output).read_bytes())["pid"] == os.getpid()
    locks.close()


def test_a_lock_of_another_host_blocks_until_its_heartbeat_is_too_old(tmp_path):
    output = tmp_path / "x_ESM.pt"
    lock_path(output).write_bytes(lock_content("other-node", 1))
    locks = OutputLocks(stale_after_s=600)
    assert "other-node pid 1" in locks.try_acquire(output)
    old = time.time() - 601
    os.utime(lock_path(output), (old, old))  # its owner stopped renewing it
    assert locks.try_acquire(output) is None
    locks.close()


def test_held_locks_are_renewed_by_a_heartbeat(tmp_path):
    output = tmp_path / "x_ESM.pt"
    locks = OutputLocks(heartbeat_s=0.05)
    assert locks.try_acquire(output) is None
    old = time.time() - 1000
    os.utime(lock_path(output), (old, old))
    for _ in range(600):  # up to a minute on a busy machine; done at the first renewal
        if lock_path(output).stat().st_mtime > old + 1:
            break
        time.sleep(0.1)
    assert lock_path(output).stat().st_mtime >= old + 999  # renewed to the time of renewal
    locks.close()


def test_an_output_locked_by_another_run_is_skipped_and_its_files_left_alone(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 30))
    out = tmp_path / "out"
    out.mkdir()
    lock_path(out / "p_ESM.pt").write_bytes(lock_content("other-node", 1))
    theirs = out / ".tmp-p_ESM.pt.abc123.part"  # the other run's write in progress
    theirs.write_bytes(b"half")
    summary = extract_files([fasta], out, model=tiny_model, show_progress=False)
    assert summary.count("locked") == 1 and not summary.ok
    assert "other-node" in summary.results[0].message
    assert theirs.exists() and lock_path(out / "p_ESM.pt").exists()
    assert not (out / "p_ESM.pt").exists()
    lock_path(out / "p_ESM.pt").unlink()  # the other run ended
    assert extract_files([fasta], out, model=tiny_model, show_progress=False).ok


@pytest.mark.e2e
def test_two_concurrent_cli_runs_compute_each_output_once(tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    n_files = 8
    for part in range(n_files):
        write_fasta(folder / f"output_{part}.fa", random_proteins(60, 50, 300, seed=part))
    out = tmp_path / "out"
    command = cli_command(folder, out, tiny_checkpoint, "--device", "cpu")
    runs = [
        subprocess.Popen(command, env=subprocess_environment(), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [process.communicate(timeout=300)[1] for process in runs]
    written = [int(re.search(r"(\d+) written", err).group(1)) for err in errors]
    assert sum(written) == n_files, errors  # each output computed by exactly one run
    for err in errors:
        assert "write_error" not in err and "Traceback" not in err
    outputs = finished_outputs(out)
    assert len(outputs) == n_files
    for name in outputs:
        load_embeddings(out / name, 32)
        assert is_complete(read_manifest(out / name))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert not list(out.glob("*.lock"))
    again = subprocess.run(
        command, env=subprocess_environment(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and says(again.stderr, f"0 written, {n_files} skipped")
