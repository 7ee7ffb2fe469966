"""What a `--devices` worker tells its parent, one member per kind of message."""

from __future__ import annotations

from enum import Enum


class WorkerMessage(str, Enum):
    """The kind of an event a worker sends (`worker.py`) and the parent handles
    (`parallel.py`), with the payload each carries."""

    WANT = "want"  # no payload: give me a file
    TOOK = "took"  # the FileJob it received (confirms the hand-over)
    SEQUENCES = "sequences"  # how many more sequences it embedded
    DONE = "done"  # the FileResult of a file
    READY = "ready"  # its device: the model is loaded
    FATAL = "fatal"  # why it cannot start (model or device)
    STOPPED = "stopped"  # why it stopped early (its device failed)
    EXIT = "exit"  # its failure log's problem, if any: it is leaving

    def __str__(self) -> str:
        return self.value
