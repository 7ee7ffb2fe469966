"""A lock names its holder beyond host + pid, so a dead holder whose pid is reused (pid 1 in
a restarted container) is seen at once; odd things at a lock path never block forever."""

import json
import os
import socket
import sys

import pytest
from helpers import random_proteins, write_fasta

from fastesm_extract import extract_files
from fastesm_extract.disk.layout import lock_path
from fastesm_extract.disk.locks import (
    LockError,
    OutputLocks,
    boot_id,
    describe_holder,
    is_stale,
    process_start_time,
)

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc (Linux)")


def holder(**fields) -> bytes:
    content = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": "2026-01-01T00:00:00Z",
        "boot_id": boot_id(),
        "start_time": process_start_time(os.getpid()),
    }
    content.update(fields)
    return json.dumps(content).encode()


@linux_only
def test_a_lock_records_the_boot_and_the_start_time_of_its_holder(tmp_path):
    locks = OutputLocks()
    assert locks.try_acquire(tmp_path / "x_ESM.pt") is None
    content = json.loads(lock_path(tmp_path / "x_ESM.pt").read_bytes())
    assert content["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    stat = open(f"/proc/{os.getpid()}/stat").read()
    assert content["start_time"] == int(stat[stat.rindex(")") + 2 :].split()[19])
    locks.close()


@linux_only
def test_a_dead_holder_whose_pid_is_reused_is_seen_at_once(tmp_path):
    # As after a container restart: the pid (here ours, alive) now belongs to another
    # process, started at another time.
    reused = holder(start_time=process_start_time(os.getpid()) - 1)
    assert is_stale(reused, age_s=1.0)
    assert not is_stale(holder(), age_s=1.0)  # the same process: alive
    old = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": "T"}).encode()
    assert not is_stale(old, age_s=1.0)  # the old format: judged by its pid alone
    assert describe_holder(old) == f"{socket.gethostname()} pid {os.getpid()} since T"
    output = tmp_path / "x_ESM.pt"
    lock_path(output).write_bytes(reused)
    locks = OutputLocks()
    assert locks.try_acquire(output) is None
    assert json.loads(lock_path(output).read_bytes())["start_time"] == process_start_time(
        os.getpid()
    )
    locks.close()


@linux_only
def test_a_pid_1_lock_of_a_restarted_container_is_taken_over(tmp_path):
    init_start = process_start_time(1)
    assert init_start is not None
    output = tmp_path / "x_ESM.pt"
    lock_path(output).write_bytes(holder(pid=1, start_time=init_start + 12345))
    locks = OutputLocks()
    assert locks.try_acquire(output) is None
    locks.close()


@linux_only
def test_a_lock_from_an_earlier_boot_is_stale(tmp_path):
    assert is_stale(holder(boot_id="00000000-0000-0000-0000-000000000000"), age_s=1.0)


def test_a_folder_at_the_lock_path_is_reported_not_waited_on(tmp_path):
    output = tmp_path / "x_ESM.pt"
    lock_path(output).mkdir()
    with pytest.raises(LockError, match="is a folder, not a lock file"):
        OutputLocks().try_acquire(output)


def test_a_dangling_symlink_at_the_lock_path_is_reported_not_waited_on(tmp_path):
    output = tmp_path / "x_ESM.pt"
    lock_path(output).symlink_to(tmp_path / "nowhere")
    with pytest.raises(LockError, match="symbolic link .*does not exist"):
        OutputLocks().try_acquire(output)


def test_an_empty_lock_is_stale_once_its_creator_had_time_to_write_it():
    assert not is_stale(b"", age_s=1.0)  # being written right now
    assert is_stale(b"", age_s=120.0)


def test_odd_lock_paths_fail_their_file_and_the_run_goes_on(tiny_model, tmp_path):
    inputs = [write_fasta(tmp_path / f"{n}.fa", random_proteins(3, 5, 20, seed=i))
              for i, n in enumerate("abc")]  # fmt: skip
    out, log = tmp_path / "out", tmp_path / "failures.log"
    out.mkdir()
    lock_path(out / "a_ESM.pt").mkdir()
    lock_path(out / "b_ESM.pt").symlink_to(tmp_path / "nowhere")
    sleeps: list[float] | None = []  # never blocked: no wait or retry (time.sleep's audit)

    def hook(event: str, args: tuple) -> None:
        if event == "time.sleep" and sleeps is not None:
            sleeps.append(args[0])

    sys.addaudithook(hook)
    summary = extract_files(inputs, out, model=tiny_model, failure_log=log, show_progress=False)
    recorded, sleeps = sleeps, None  # the hook stays (hooks cannot be removed): stop recording
    assert recorded == []
    assert [(r.job.fasta.name, r.status) for r in summary.results] == [
        ("a.fa", "failed"),
        ("b.fa", "failed"),
        ("c.fa", "written"),
    ]
    assert "is a folder" in summary.results[0].message
    assert "symbolic link" in summary.results[1].message
    assert [line.split("\t")[3] for line in log.read_text().splitlines()] == ["lock_error"] * 2
