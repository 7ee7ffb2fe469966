"""One output is computed by one run at a time: a lock file per output (SPEC section 8).

`x_ESM.pt.lock` is created with O_CREAT|O_EXCL, which is atomic on local disks and on
NFS/Lustre (unlike flock), and holds who took it: host, pid, time. The holder touches its
locks every `HEARTBEAT_S` seconds. A lock left by a killed run never blocks forever: it is
stale when its process is gone (same host), or when its heartbeat is older than
`STALE_AFTER_S` (any host, e.g. a node that died).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .layout import lock_path

log = logging.getLogger("fastesm_extract")

HEARTBEAT_S = 60.0
STALE_AFTER_S = float(os.environ.get("FASTESM_EXTRACT_LOCK_STALE_S", 15 * 60))


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def describe_holder(content: bytes) -> str:
    """`host pid N since T` from a lock file's bytes (best effort, for messages)."""
    try:
        holder = json.loads(content)
        return f"{holder['host']} pid {holder['pid']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "an unknown run"


def is_stale(content: bytes, age_s: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """True when the lock's owner is gone: its pid is dead on this host, or it has not
    renewed the lock for `stale_after_s` seconds."""
    if age_s > stale_after_s:
        return True
    try:
        holder = json.loads(content)
        same_host = holder["host"] == socket.gethostname()
        return same_host and not _pid_is_alive(int(holder["pid"]))
    except (ValueError, KeyError, TypeError):
        return False  # half-written by its creator, or foreign: trust the age only


class OutputLocks:
    """The output locks this process holds, renewed by a heartbeat thread until `close()`."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S):
        self.stale_after_s, self.heartbeat_s = stale_after_s, heartbeat_s
        self._held: dict[Path, bytes] = {}
        self._mutex = threading.Lock()
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def try_acquire(self, output: str | Path) -> str | None:
        """Take the lock of `output`: None when taken, else who holds it (for the message)."""
        path = lock_path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "token": uuid.uuid4().hex,
            }
        ).encode()
        for _ in range(3):
            with self._mutex:
                if self._closed.is_set():
                    return "this run, which is stopping"
                try:
                    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    pass
                else:
                    try:
                        os.write(descriptor, content)
                    finally:
                        os.close(descriptor)
                    self._held[path] = content
                    self._start_heartbeat()
                    return None
            try:
                current, age = path.read_bytes(), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if not is_stale(current, age, self.stale_after_s):
                return describe_holder(current)
            log.warning("%s: removing a lock left by %s", path, describe_holder(current))
            _break_stale_lock(path, current)
        return describe_holder(path.read_bytes()) if path.exists() else "another run"

    def release(self, output: str | Path) -> None:
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
