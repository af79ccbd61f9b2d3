"""The gunicorn worker the API runs on: gthread (a poller holds idle and keep-alive
connections without a thread; threads run requests), with two pools and budgets so that no
client holds a thread that health and status reads need:

- reads (GET, HEAD, OPTIONS: health, readiness, status, lists, metrics) run on a pool of
  their own (``read_threads``); submissions, cancels and deletes on the other. Uploads,
  URL fetches and probes can fill theirs; they never delay a read;
- live events (``GET .../events``, server-sent events that last as long as their task) run
  on a third pool (``stream_threads``, default 256 per process): a follower holds one of its
  threads, blocked on its queue, for the stream's life, and never a read thread;
- a request's line and headers are gathered by the poller's thread, without blocking, and
  the request goes to a thread of the pool only once they are all in: a client that sends
  its headers slowly holds no thread; they must arrive within ``header_timeout_s`` of the
  connection (or of its hand-over to a thread), else the connection is shut;
- a body's reads have their own deadlines (``api.body``);
- a connection whose body was not read to the end (a refusal before the upload) is closed
  after the answer, never drained: gunicorn would otherwise read the rest of the body, at
  the client's pace, before the next request;
- gunicorn's own refusals (a malformed request line, too many headers, an unknown transfer
  coding) are problem bodies (application/problem+json), as the app's are.
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import (
    ForbiddenProxyRequest,
    LimitRequestHeaders,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from api.watchdog import Watchdog, shut

PROBLEM_TYPE = "https://facefleet.dev/problems/"
_STATUSES: tuple[tuple[type[BaseException], int, str], ...] = (
    (LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (UnsupportedTransferCoding, 501, "Not Implemented"),
    (ForbiddenProxyRequest, 403, "Forbidden"),
    (ParseException, 400, "Bad Request"),
)


# headers larger than this are handed to a thread as they are (its parser refuses them)
_HEAD_GATHERED = 64 * 1024


_READS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
# a stuck send (a client that reads no answer) or read ends after this long
_IO_TIMEOUT_S = 60.0


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]
    header_timeout_s = 10.0
    read_threads = 4
    stream_threads = 256

    def init_process(self) -> None:
        self.watchdog = Watchdog()
        self.read_pool = futures.ThreadPoolExecutor(max_workers=self.read_threads)
        self.stream_pool = futures.ThreadPoolExecutor(max_workers=self.stream_threads)
        super().init_process()

    def handle_quit(self, sig: Any, frame: Any) -> None:
        self.read_pool.shutdown(False)
        self.stream_pool.shutdown(False)
        super().handle_quit(sig, frame)

    def accept(self, server: Any, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)
        conn.head, conn.header_alarm = b"", None
        if not self.cfg.is_ssl:  # TLS bytes cannot be gathered before the handshake
            deadline = time.monotonic() + self.header_timeout_s
            conn.header_alarm = self.watchdog.arm(deadline, shut(sock, socket.SHUT_RDWR))
        self.nr_conns += 1
        with self._lock:
            self.poller.register(sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        if self.cfg.is_ssl:
            super().on_client_socket_readable(conn, client)
            return
        try:
            data = conn.sock.recv(_HEAD_GATHERED)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        gathered = conn.head + data
        if data and b"\r\n\r\n" not in gathered and len(gathered) < _HEAD_GATHERED:
            conn.head = gathered  # stays in the poller until the rest comes (or the deadline)
            return
        conn.head = b""
        self.watchdog.disarm(conn.header_alarm)
        with self._lock:
            self.poller.unregister(client)
            if conn.initialized:
                try:
                    self._keep.remove(conn)
                except ValueError:  # closed as idle meanwhile
                    return
        conn.init()
        conn.parser.unreader.unread(gathered)  # after bytes a pipelining client sent before
        pool = self._pool_for(gathered)
        self._wrap_future(pool.submit(self.handle, conn), conn)

    def _pool_for(self, head: bytes) -> futures.ThreadPoolExecutor:
        method, _, rest = head.partition(b" ")
        if method not in _READS:
            return self.tpool  # type: ignore[no-any-return]
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        return self.stream_pool if method == b"GET" and path.endswith(b"/events") else self.read_pool

    def handle(self, conn: Any) -> Any:
        conn.sock.settimeout(_IO_TIMEOUT_S)
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


def worker_class(
    header_timeout_s: float, read_threads: int, stream_threads: int = 256
) -> type[BoundedThreadWorker]:
    """The worker class with this deployment's header budget, read and stream pools."""
    attributes = {
        "header_timeout_s": header_timeout_s,
        "read_threads": read_threads,
        "stream_threads": stream_threads,
    }
    return type("ApiWorker", (BoundedThreadWorker,), attributes)
