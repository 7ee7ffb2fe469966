"""Ends every process of one test cluster once the test process that started it is gone.

Run as `python slurm_reaper.py SLURM_CONF` with a pipe on stdin whose other end only the test
process holds: end of file means that process closed it (the cluster stopped) or died (even
by SIGKILL). The reaper then kills every process whose environment names this SLURM_CONF:
the daemons, and what the kernel cannot tie to the test process, the job steps (slurmd
starts each `slurmstepd` detached, so it outlives slurmd) and the jobs they run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def processes_using(conf: str | os.PathLike) -> list[int]:
    """PIDs of the processes (other than this one) started with SLURM_CONF=`conf`."""
    marker = b"\0SLURM_CONF=" + os.fsencode(conf) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = b"\0" + (entry / "environ").read_bytes()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if marker in environment:
            found.append(int(entry.name))
    return found


def kill_processes_using(conf: str | os.PathLike, timeout: float = 10) -> list[int]:
    """SIGKILL them until none is left (a dying step may still start one); returns them all."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while (pids := processes_using(conf)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += [pid for pid in pids if pid not in killed]
        time.sleep(0.1)
    return killed


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of pytest: the teardown stops it
    sys.stdin.buffer.read()  # returns when the test process closed its end or died
    kill_processes_using(sys.argv[1])
