"""One thread per process that runs an action at its deadline unless it is disarmed first:
how a connection that stops sending (headers or a body) is cut on time without a timer
thread per connection. Started on first use, so a forked (gunicorn) worker starts its own."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True)
class Alarm:
    at: float  # time.monotonic()
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    fired: bool = field(default=False, compare=False)


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[Alarm] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, at: float, action: Callable[[], None]) -> Alarm:
        alarm = Alarm(at, next(self._seq), action)
        with self._cond:
            heapq.heappush(self._heap, alarm)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return alarm

    def disarm(self, alarm: Alarm | None) -> bool:
        """True when the action had not run (and now never will)."""
        if alarm is None:
            return True
        with self._cond:
            alarm.cancelled = True
            return not alarm.fired

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].at > time.monotonic():
                    wait = self._heap[0].at - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                alarm = heapq.heappop(self._heap)
                if alarm.cancelled:
                    continue
                alarm.fired = True
            try:
                alarm.action()
            except Exception:  # one failed action must not stop the others
                log.exception("a watchdog action failed")


def shut(sock: socket.socket, how: int) -> Callable[[], None]:
    """An action that shuts ``sock`` down (``SHUT_RD``: a blocked read returns at once, and an
    answer can still be written)."""

    def action() -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(how)

    return action
