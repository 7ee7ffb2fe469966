"""Iterate a function over items in a background thread, a bounded number ahead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_DONE = object()


def prefetched(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    ahead: int,
    stop: threading.Event,
    name: str = "prefetch",
) -> Iterator[Result]:
    """Yield `function(item)` for each item, computed up to `ahead` results in advance by a
    daemon thread (so `items` may be a lazily fed generator).

    An error raised in that thread is raised here, in the caller's thread, instead of
    leaving it waiting forever. Setting `stop` ends the thread after its current item.
    """
    ready: queue.Queue = queue.Queue(maxsize=max(1, ahead))

    def hand_over(result: object) -> None:
        while not stop.is_set():
            try:
                ready.put(result, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                hand_over(function(item))
                if stop.is_set():
                    return
            hand_over(_DONE)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            hand_over(error)

    threading.Thread(target=produce, name=name, daemon=True).start()
    while (result := ready.get()) is not _DONE:
        if isinstance(result, BaseException):
            raise result
        yield result
