"""`fastesm-extract` with one `--devices` worker made to die at the worst moment (tests only).

Run as a script (`python paused_worker_launcher.py extract ...`): spawned workers import the
parent's main script before running, so the hook below is installed in every worker, and in
no other process. It holds whatever carries tasks and events between the processes, since it
patches the lowest read and write of `multiprocessing.connection.Connection`, which every
`multiprocessing` queue and pipe uses.

`PAUSE_HOOK_DIR` names a folder; `PAUSE_HOOK_AT` where the victim, one of the workers, stops:
- `task-read`: the first worker to wait for a task is the victim. Its outputs are never
  published, so the file it works on is still unfinished when it dies; on its next wait for
  a task, it stops inside that read.
- `event-write`: the first worker to tell that it took a file stops inside that write.
The victim writes its PID to `paused` once stopped, and sleeps there until killed.
"""

import os
import pickle
import sys
import time
from pathlib import Path

_victim = False
_reads = 0


def _claim_victim(folder: Path) -> bool:
    try:
        os.close(os.open(folder / "victim", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def _pause(folder: Path) -> None:
    (folder / "paused.part").write_text(str(os.getpid()))
    os.rename(folder / "paused.part", folder / "paused")
    time.sleep(3600)  # killed here


def _install(folder: Path, at: str) -> None:
    from multiprocessing import connection

    read, write, replace = (
        connection.Connection._recv_bytes,
        connection.Connection._send_bytes,
        os.replace,
    )

    def paused_read(self, *args, **kwargs):
        global _reads, _victim
        _reads += 1
        if at == "task-read" and _reads == 1:
            _victim = _claim_victim(folder)
        elif at == "task-read" and _victim:
            _pause(folder)
        return read(self, *args, **kwargs)

    def paused_write(self, buffer, *args, **kwargs):
        took = at == "event-write" and pickle.loads(bytes(buffer))[0] == "took"
        if took and _claim_victim(folder):
            _pause(folder)
        return write(self, buffer, *args, **kwargs)

    def unpublished_replace(source, target, *args, **kwargs):
        if _victim and str(target).endswith("_ESM.pt"):
            time.sleep(3600)  # the output of the victim's file never appears
        return replace(source, target, *args, **kwargs)

    connection.Connection._recv_bytes = paused_read
    connection.Connection._send_bytes = paused_write
    os.replace = unpublished_replace


if __name__ == "__mp_main__" and os.environ.get("PAUSE_HOOK_DIR"):
    _install(Path(os.environ["PAUSE_HOOK_DIR"]), os.environ["PAUSE_HOOK_AT"])

if __name__ == "__main__":
    from fastesm_extract.cli.main import main

    sys.exit(main(sys.argv[1:]))
