"""A transfer's progress, reported to its caller's stall watch (a lease's ``touch``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType


class TransferWatch:
    """Calls ``progress`` whenever a piece of the transfer moves (``moved``), and every
    ``tick_s`` while the transfer waits on the other side, for up to ``patience_s`` after the
    last piece. Why the ticks: a request whose body the kernel already holds shows no byte
    moving while a slow link drains it, yet it is no hung holder; the transport's own
    timeouts (``patience_s`` covers them) end a transfer that truly hangs, so a slow upload
    keeps its lease and a dead one still fails. ``progress`` None: nothing to report."""

    def __init__(self, progress: Callable[[], None] | None, patience_s: float, tick_s: float = 0.5) -> None:
        self._progress, self._patience_s, self._tick_s = progress, patience_s, tick_s
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def moved(self, _count: int = 0) -> None:
        """A piece of the transfer moved (boto3's ``Callback`` passes its size)."""
        self._last = time.monotonic()
        if self._progress is not None:
            self._progress()

    def __enter__(self) -> TransferWatch:
        if self._progress is not None:
            self._thread = threading.Thread(target=self._tick, name="transfer watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _tick(self) -> None:
        assert self._progress is not None
        while not self._stop.wait(self._tick_s):
            if time.monotonic() - self._last <= self._patience_s:
                self._progress()
