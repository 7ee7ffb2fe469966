"""One output is computed by one run at a time: a lock file per output.

`x_ESM.pt.lock` is created with O_CREAT|O_EXCL, which is atomic on local disks and on
NFS/Lustre (unlike flock), and holds who took it: host, pid, time, and what tells that very
process from a later one given the same pid: the boot id and the process's start time. The
holder touches its locks every `HEARTBEAT_S` seconds. A lock left by a killed run never
blocks forever: it is stale when its process is gone (same host: pid dead, or reused by a
process started at another time, or the machine rebooted since; in a container the tool is
often pid 1 after every restart), or when its heartbeat is older than `lock_stale_after_s()` (any
host, e.g. a node that died). Locks written before the boot id and start time were recorded
are judged by their pid alone.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
from pathlib import Path

from fastesm_extract.disk.failures import describe_write_error
from fastesm_extract.disk.layout import lock_path
from fastesm_extract.settings import lock_stale_after_s

log = logging.getLogger("fastesm_extract")

HEARTBEAT_S = 60.0


# An empty lock is one whose creator died (or failed) between creating and writing it,
# which takes microseconds: older than this, nobody will ever write it.
EMPTY_LOCK_GRACE_S = 60.0


class LockError(Exception):
    """The lock of an output cannot be taken, for a reason no waiting will fix (a folder or
    a symlink in its place, a full disk): that output fails, the others go on."""


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def boot_id() -> str | None:
    """This boot of this machine's kernel (None where /proc does not tell)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (None where /proc does not tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    try:  # fields after the command name, which may hold spaces and parentheses itself
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def describe_holder(content: bytes) -> str:
    """`host pid N since T` from a lock file's bytes (best effort, for messages)."""
    try:
        holder = json.loads(content)
        return f"{holder['host']} pid {holder['pid']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "an unknown run"


def _holder_is_gone(holder: dict) -> bool:
    """True when the holder, a process of this host, no longer runs."""
    pid = int(holder["pid"])
    if holder.get("boot_id") and boot_id() and holder["boot_id"] != boot_id():
        return True  # the machine rebooted since: every process of that boot is gone
    if not _pid_is_alive(pid):
        return True
    recorded, now = holder.get("start_time"), process_start_time(pid)
    return recorded is not None and now is not None and int(recorded) != now  # pid reused


def is_stale(content: bytes, age_s: float, stale_after_s: float | None = None) -> bool:
    """True when the lock's owner is gone: it is a dead process of this host (or its pid
    now belongs to another process), it has not renewed the lock for `stale_after_s`
    seconds, or the lock stayed empty for `EMPTY_LOCK_GRACE_S`."""
    if stale_after_s is None:
        stale_after_s = lock_stale_after_s()
    if age_s > stale_after_s or (not content and age_s > EMPTY_LOCK_GRACE_S):
        return True
    try:
        holder = json.loads(content)
        return holder["host"] == socket.gethostname() and _holder_is_gone(holder)
    except (ValueError, KeyError, TypeError):
        return False  # half-written by its creator, or foreign: trust the age only


def _refuse_odd_lock_path(path: Path) -> None:
    """Raises `LockError` when what is at `path` is no lock file this tool could have made."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        dangling = "" if path.exists() else ", which does not exist"
        raise LockError(
            f"{path} is a symbolic link (to {target}{dangling}), not a lock file: remove it"
        )
    if stat.S_ISDIR(mode):
        raise LockError(f"{path} is a folder, not a lock file: remove it")


def _write_lock(path: Path, content: bytes) -> bool:
    """Create the lock file `path` holding `content`; False when it exists already.

    A lock that cannot be written whole (a full disk) is removed again: an empty lock
    would block the output for every later run.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as error:
        raise LockError(f"cannot take the lock {path}: {describe_write_error(error)}") from error
    try:
        try:
            if os.write(descriptor, content) != len(content):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(descriptor)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise LockError(f"cannot take the lock {path}: {describe_write_error(error)}") from error
    return True


class OutputLocks:
    """The output locks this process holds, renewed by a heartbeat thread until `close()`."""

    def __init__(self, stale_after_s: float | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.stale_after_s = lock_stale_after_s() if stale_after_s is None else stale_after_s
        self.heartbeat_s = heartbeat_s
        self._held: dict[Path, bytes] = {}
        self._mutex = threading.Lock()
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def try_acquire(self, output: str | Path) -> str | None:
        """Take the lock of `output`: None when taken, else who holds it (for the message).

        Raises `LockError` when no lock can be taken there (see its doc)."""
        path = lock_path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "token": uuid.uuid4().hex,
                "boot_id": boot_id(),
                "start_time": process_start_time(os.getpid()),
            }
        ).encode()
        for _ in range(3):
            with self._mutex:
                if self._closed.is_set():
                    return "this run, which is stopping"
                if _write_lock(path, content):
                    self._held[path] = content
                    self._start_heartbeat()
                    return None
            _refuse_odd_lock_path(path)
            try:
                current, age = path.read_bytes(), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except OSError as error:
                raise LockError(f"cannot read the lock {path}: {error.strerror}") from error
            if not is_stale(current, age, self.stale_after_s):
                return describe_holder(current)
            log.warning("%s: removing a lock left by %s", path, describe_holder(current))
            _break_stale_lock(path, current)
        return describe_holder(path.read_bytes()) if path.exists() else "another run"

    def release(self, output: str | Path | None) -> None:
        if output is None:  # a job embedded in memory holds no lock
            return
        path = lock_path(output)
        with self._mutex:
            if self._held.pop(path, None) is not None:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release every lock still held; later `try_acquire` calls fail. Idempotent."""
        with self._mutex:
            self._closed.set()
            for path in self._held:
                path.unlink(missing_ok=True)
            self._held.clear()

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._renew, name="fastesm-locks", daemon=True
            )
            self._heartbeat.start()

    def _renew(self) -> None:
        while not self._closed.wait(self.heartbeat_s):
            with self._mutex:
                for path in self._held:
                    try:
                        os.utime(path)
                    except OSError as error:
                        log.warning("cannot renew the lock %s: %s", path, error)


def _break_stale_lock(path: Path, seen: bytes) -> None:
    """Remove the stale lock `path` whose bytes were `seen`, never a fresh one.

    Two runs may judge the same lock stale at once. Each renames it aside first (only one
    rename finds it); if what was renamed is not the stale lock but one just taken by
    another run, it is put back.
    """
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        if aside.read_bytes() != seen:
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
    finally:
        aside.unlink(missing_ok=True)


def live_lock_holder(output: Path) -> str | None:
    """Who holds the lock of `output`, when a live run does."""
    path = lock_path(output)
    try:
        content, age = path.read_bytes(), max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None
    return None if is_stale(content, age) else describe_holder(content)
