"""Deadlines on reading a request's body (WSGI middleware): no client holds a thread by
sending slowly or not at all.

- Each read waits at most ``read_timeout_s`` for the next bytes (the socket's timeout).
- The whole body must arrive within ``grace_s`` plus its declared length at
  ``min_bytes_per_s`` (a chunked body: the largest allowed). At that deadline the watchdog
  shuts the socket's reading side, which ends a read that a trickle of bytes would keep
  alive forever (gunicorn keeps reading until it has the size asked for).

Either way the app's read raises ``BodyTimeout``, answered 408 (``api.problems``); the
submission then removes what it stored, as for any refusal. The answer can still be
written: only the reading side is shut.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from api.watchdog import Alarm, Watchdog, shut


class BodyTimeout(Exception):
    """The body did not arrive in time. Not an OSError, which werkzeug's stream would turn
    into a client disconnection."""


class _TimedInput:
    def __init__(self, stream: Any, length: int | None, watchdog: Watchdog, read_timeout_s: float) -> None:
        self._stream, self._length, self._watchdog = stream, length, watchdog
        self._read_timeout_s = read_timeout_s
        self.received = 0
        self.alarm: Alarm | None = None
        self.budget_message = ""

    @property
    def cut(self) -> bool:
        return self.alarm is not None and self.alarm.fired

    def read(self, size: int | None = -1) -> bytes:
        return self._timed(lambda: self._stream.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._timed(lambda: self._stream.readline(size))

    def __iter__(self) -> Iterable[bytes]:
        return iter(self.readline, b"")

    def _timed(self, read: Callable[[], bytes]) -> bytes:
        if self.cut:
            raise BodyTimeout(self.budget_message)
        try:
            data = read()
        except TimeoutError:
            raise BodyTimeout(f"no byte of the body arrived for {self._read_timeout_s:g} s") from None
        except OSError:
            if self.cut:  # the shut socket may also fail the read
                raise BodyTimeout(self.budget_message) from None
            raise
        if self.cut:
            raise BodyTimeout(self.budget_message)
        self.received += len(data)
        if not data or (self._length is not None and self.received >= self._length):
            self._watchdog.disarm(self.alarm)  # the body is in: later work has no deadline here
        return data


class BodyDeadlines:
    def __init__(
        self,
        app: Any,
        *,
        read_timeout_s: float,
        min_bytes_per_s: int,
        grace_s: float,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.read_timeout_s, self.min_bytes_per_s = read_timeout_s, min_bytes_per_s
        self.grace_s, self.max_body_bytes = grace_s, max_body_bytes
        self.watchdog = Watchdog()

    def budget_s(self, length: int | None) -> float:
        """Seconds the whole body of ``length`` bytes (None: not declared) may take."""
        expected = self.max_body_bytes if length is None else min(length, self.max_body_bytes)
        return self.grace_s + expected / self.min_bytes_per_s

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = int(declared) if declared.isdigit() else None
        if not chunked and not length:
            return self.app(environ, start_response)
        timed = _TimedInput(environ["wsgi.input"], length, self.watchdog, self.read_timeout_s)
        budget = self.budget_s(length)
        timed.budget_message = (
            f"the body did not arrive within {budget:.0f} s (at least {self.min_bytes_per_s} bytes/s "
            f"after {self.grace_s:g} s)"
        )
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self.read_timeout_s)
            timed.alarm = self.watchdog.arm(time.monotonic() + budget, shut(sock, socket.SHUT_RD))
        else:  # no socket to shut (a test client): the deadline is checked at each read
            timed.alarm = self.watchdog.arm(time.monotonic() + budget, lambda: None)
        environ["wsgi.input"] = timed
        try:
            return self.app(environ, start_response)
        finally:
            self.watchdog.disarm(timed.alarm)
