"""Run a producer one step ahead in a thread.

Reading and parsing (pyarrow) and writing Parquet (polars) release the GIL, so on a
small machine overlapping them with the mapping work is most of the speed there is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, computing up to `depth` items ahead in a thread.

    Exceptions raised by the producer are re-raised in the consumer, at the point
    where the failing item would have been yielded.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((True, item))
            slots.put((True, _DONE))
        except BaseException as exc:  # handed to the consumer
            slots.put((False, exc))

    thread = threading.Thread(target=produce, name="curate-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
