"""SIGTERM (Slurm time limits, `scancel`) behaves like Ctrl-C (SPEC section 8).

Both end the run through the same path: `KeyboardInterrupt` is raised in the main thread,
the writes in progress finish, locks and temporaries are removed, and the caller prints one
line and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup for the one serves the other."""


def exit_status(interrupt: KeyboardInterrupt) -> int:
    return EXIT_SIGTERM if isinstance(interrupt, Terminated) else EXIT_SIGINT


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises `Terminated` in the main thread; later
    ones are ignored so that the cleanup it starts is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    received = False

    def terminate(signum: int, frame: object) -> None:
        nonlocal received
        if not received:
            received = True
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
