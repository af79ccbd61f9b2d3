"""A TCP forwarder on loopback that the tests put in front of a service to cut it off:
``down()`` refuses new connections and drops the open ones (as a crashed server or a
broken network does), ``up()`` serves again on the same port; ``cut()`` drops the open
connections but goes on accepting (a failover, a NAT or load balancer forgetting its
flows); ``latency_s`` delays every piece of every answer (a slow or distant service).
``TapProxy`` logs, slows or holds back the HTTP requests it passes on."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", latency_s: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.latency_s = latency_s
        self.port = 0
        self.bytes_sent = 0  # from the clients to the service, over the proxy's life
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut()

    def cut(self) -> int:
        """Drop every open connection; how many there were."""
        with self._lock:
            dropped, self._open = self._open, set()
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(dropped) // 2

    @contextlib.contextmanager
    def outage(self):  # type: ignore[no-untyped-def]
        self.down()
        try:
            yield
        finally:
            self.up()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink, delay in ((client, upstream, 0.0), (upstream, client, self.latency_s)):
                threading.Thread(target=self._pump, args=(source, sink, delay), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delay_s: float) -> None:
        try:
            while data := source.recv(65536):
                if delay_s:
                    time.sleep(delay_s)
                sink.sendall(data)
                if sink.getpeername() == self.target:
                    with self._lock:
                        self.bytes_sent += len(data)
        except OSError:
            pass
        finally:
            self._close_pair(source, sink)

    def _close_pair(self, source: socket.socket, sink: socket.socket) -> None:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)


_METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


@dataclass
class Request:
    """One HTTP request a client sent through a TapProxy: its method, path (with the query),
    when its first and its last bytes were passed on (monotonic clock)."""

    method: str
    path: str
    first_byte: float
    last_byte: float


class TapProxy(TcpProxy):
    """A TcpProxy in front of an HTTP service (S3) that logs every request passed on
    (``requests``: a write log), slows the bodies of those whose request line holds
    ``slow_marker`` to ``slow_bytes_per_s``, and holds back the first request whose line
    holds ``hold_marker`` until ``release()``."""

    def __init__(
        self,
        target_port: int,
        slow_marker: bytes | None = None,
        slow_bytes_per_s: float = 0.0,
        hold_marker: bytes | None = None,
    ) -> None:
        self.requests: list[Request] = []
        self.slow_marker, self.slow_bytes_per_s = slow_marker, slow_bytes_per_s
        self.hold_marker = hold_marker
        self.held = threading.Event()  # set once the held request arrived
        self._released = threading.Event()
        super().__init__(target_port)

    def release(self) -> None:
        self._released.set()

    def _pump(self, source: socket.socket, sink: socket.socket, delay_s: float) -> None:
        for sock in (source, sink):  # a slowed or held request keeps the service quiet a while
            sock.settimeout(None)
        if delay_s or sink.getpeername() != self.target:
            super()._pump(source, sink, delay_s)  # answers pass as they are
            return
        current: Request | None = None
        slow = False
        try:
            while data := source.recv(1024 if slow else 65536):
                if data.startswith(_METHODS):
                    current, slow = self._begin(data)
                if slow:
                    time.sleep(len(data) / self.slow_bytes_per_s)
                sink.sendall(data)
                if current is not None:
                    current.last_byte = time.monotonic()
        except OSError:
            pass
        finally:
            self._close_pair(source, sink)

    def _begin(self, data: bytes) -> tuple[Request, bool]:
        """A new request (``data`` starts with its line): logged, held back if it is the one."""
        line = data.split(b"\r\n", 1)[0]
        method, path = line.decode("latin-1").split(" ")[:2]
        if self.hold_marker is not None and self.hold_marker in line and not self.held.is_set():
            self.held.set()
            self._released.wait()
        now = time.monotonic()
        request = Request(method, path, now, now)
        with self._lock:
            self.requests.append(request)
        slow = bool(self.slow_marker and self.slow_marker in line and self.slow_bytes_per_s)
        return request, slow
