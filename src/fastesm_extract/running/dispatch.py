"""Which file goes to which `--devices` worker: handed out on request, largest first.

Bookkeeping only, no processes (`parallel.py` carries the messages). A worker asks when it
wants its next file and confirms each file it takes. So when a worker dies, the files it
took and did not finish are known exactly (they are reported), and a file it was being
handed but never took goes to another worker instead.
"""

from __future__ import annotations

from pathlib import Path

from fastesm_extract.results import FileJob

# An answer to a worker's request: its next file, or None when there will be no more.
Answer = tuple[int, FileJob | None]


class Dispatcher:
    """Hands out `jobs` in their order to workers `0 .. workers - 1` as they ask."""

    def __init__(self, jobs: list[FileJob], workers: int) -> None:
        self.pending = list(jobs)  # not handed out yet, in the order to hand them out
        self._handed: dict[int, list[FileJob]] = {i: [] for i in range(workers)}  # not taken
        self._taken: dict[int, dict[Path, FileJob]] = {i: {} for i in range(workers)}
        self._waiting: dict[int, None] = {}  # workers that asked, in the order they asked
        self._gone: set[int] = set()

    def ask(self, worker: int) -> list[Answer]:
        """`worker` wants its next file: the answers to send now (maybe none yet)."""
        self._waiting[worker] = None
        return self._serve()

    def took(self, worker: int, job: FileJob) -> list[Answer]:
        """`worker` took `job`: from now on it is the worker's to finish or lose."""
        self._handed[worker].remove(job)
        self._taken[worker][job.output] = job
        return self._serve()

    def finished(self, worker: int, job: FileJob) -> None:
        self._taken[worker].pop(job.output, None)

    def leave(self, worker: int) -> tuple[list[FileJob], list[Answer]]:
        """`worker` is gone (exited or died): the files it took and did not finish, and the
        answers to send now that the files it never took are back for the others."""
        self._gone.add(worker)
        self._waiting.pop(worker, None)
        self.pending[:0] = self._handed[worker]  # back at the front: the largest first
        self._handed[worker] = []
        unfinished = list(self._taken[worker].values())
        self._taken[worker].clear()
        return unfinished, self._serve()

    def _serve(self) -> list[Answer]:
        answers: list[Answer] = []
        for worker in list(self._waiting):
            if self.pending:
                job = self.pending.pop(0)
                self._handed[worker].append(job)
                answers.append((worker, job))
            elif any(self._handed[other] for other in self._handed if other not in self._gone):
                continue  # a file in transit may still come back if its worker dies: wait
            else:
                answers.append((worker, None))
            del self._waiting[worker]
        return answers
