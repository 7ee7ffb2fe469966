"""SIGTERM (Slurm time limits, `scancel`) and SIGHUP (a closed terminal or ssh session)
behave like Ctrl-C.

All three end the run through the same path: `KeyboardInterrupt` is raised in the main
thread, the writes in progress finish, locks and temporaries are removed, and the caller
prints one line and exits 128 + the signal's number: 130 (SIGINT), 143 (SIGTERM) or 129
(SIGHUP). Batch systems often send a signal twice (or a second one soon after the first):
once one has arrived, later ones are ignored until the process exits, so they cannot cut
the cleanup short nor kill the process after its message.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGHUP = 130, 143, 129
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every cleanup for the one serves all."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process ended by that signal."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def describe(interrupt: KeyboardInterrupt) -> str:
    """How the one line printed on a stop names it."""
    if not isinstance(interrupt, Terminated):
        return "interrupted"
    return f"terminated ({signal.Signals(interrupt.signum).name})"


def _no_op(signum: int, frame: object) -> None:
    pass


def ignore_stop_signals() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP do nothing: the process is about to exit.

    SIG_IGN, not a Python handler: when the interpreter shuts down it puts SIG_DFL back in
    place of Python handlers (not of SIG_IGN), and a signal in the last moments of the exit
    would then kill the process after its message. Call it only once the cleanup is done:
    a signal that arrived while the main thread was busy in C code (the model) and is not
    handled yet would be reported as "ignored due to race condition" under SIG_IGN.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def raise_on_stop_signal(signum: int, frame: object) -> None:
    """A handler: the first stop signal raises `KeyboardInterrupt` (`Terminated` for SIGTERM
    and SIGHUP); later ones do nothing (a no-op handler until `ignore_stop_signals`)."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _no_op)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGINT, SIGTERM or SIGHUP raises in the main thread (see
    `raise_on_stop_signal`). The previous handlers come back when the block ends, unless a
    signal arrived: then later ones stay ignored (`ignore_stop_signals`), since the process
    is on its way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = {signum: signal.signal(signum, raise_on_stop_signal) for signum in STOP_SIGNALS}
    stopped = False
    try:
        yield
    except KeyboardInterrupt:
        stopped = True
        raise
    finally:
        if stopped:  # the cleanup is done: only the exit is left
            ignore_stop_signals()
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
