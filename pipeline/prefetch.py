"""Run a generator ahead in a background thread, so decoding, inference and encoding overlap.

PyAV and onnxruntime release the GIL in their native calls, so one stage per thread keeps
several cores busy. The queue is bounded: memory stays flat however long the video is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(source: Iterator[T], depth: int = 8) -> Generator[T, None, None]:
    """Yield what ``source`` yields, produced up to ``depth`` items ahead in another thread.

    An exception in the producer is raised in the consumer. Closing the returned generator
    (or abandoning it) stops the producer at its next item.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            items.put(_Failure(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # in this thread, where the generator runs (it may hold an open file)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
