"""The gunicorn worker the API runs on: gthread (a poller holds idle and keep-alive
connections without a thread; a pool of threads runs requests), with budgets so that no
client holds a thread for long:

- a request's line and headers must arrive within ``header_timeout_s`` of the first byte,
  else the connection is shut (a slowloris holds a thread that long at most);
- a body's reads have their own deadlines (``api.body``);
- a connection whose body was not read to the end (a refusal before the upload) is closed
  after the answer, never drained: gunicorn would otherwise read the rest of the body, at
  the client's pace, before the next request;
- gunicorn's own refusals (a malformed request line, too many headers, an unknown transfer
  coding) are problem bodies (application/problem+json), as the app's are.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any

from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import (
    ForbiddenProxyRequest,
    LimitRequestHeaders,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

from api.watchdog import Watchdog, shut

PROBLEM_TYPE = "https://facefleet.dev/problems/"
_STATUSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (UnsupportedTransferCoding, 501, "Not Implemented"),
    (ForbiddenProxyRequest, 403, "Forbidden"),
    (ParseException, 400, "Bad Request"),
)


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]
    header_timeout_s = 10.0

    def init_process(self) -> None:
        self.watchdog = Watchdog()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        deadline = time.monotonic() + self.header_timeout_s
        conn.header_alarm = self.watchdog.arm(deadline, shut(conn.sock, socket.SHUT_RDWR))
        try:
            return super().handle(conn)
        finally:
            self.watchdog.disarm(conn.header_alarm)

    def handle_request(self, req: Any, conn: Any) -> bool:
        self.watchdog.disarm(conn.header_alarm)  # the headers are in
        keepalive = bool(super().handle_request(req, conn))
        return keepalive and _body_read(req)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        status, title = next(((s, t) for kind, s, t in _STATUSES if isinstance(exc, kind)), (500, ""))
        if status == 500:
            self.log.exception("error handling a request")
            title, detail = "Internal Server Error", "an unexpected error occurred; it has been logged"
        else:
            self.log.warning("invalid request: %s", exc)
            detail = str(exc)[:300] or title
        body = json.dumps(
            {"type": PROBLEM_TYPE + str(status), "title": title, "status": status, "detail": detail}
        ).encode()
        head = (
            f"HTTP/1.1 {status} {title}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            write_nonblock(client, head.encode("latin-1") + body)


def _body_read(req: Any) -> bool:
    """Whether the request's body was read to its end (or it had none)."""
    reader = getattr(req.body, "reader", None)
    if isinstance(reader, LengthReader):
        return bool(reader.length == 0)
    if isinstance(reader, ChunkedReader):
        return reader.parser is None
    return True


def worker_class(header_timeout_s: float) -> type[BoundedThreadWorker]:
    """The worker class with this deployment's header budget."""
    return type("ApiWorker", (BoundedThreadWorker,), {"header_timeout_s": header_timeout_s})
