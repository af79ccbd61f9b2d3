"""No client can stall the API: an API with keys (two gunicorn processes of 8 threads, the
default serving model) while a tenant opens 100 uploads that trickle one byte a second, or
stall after their first kilobyte, or trickle their headers. Health and a task's status keep
answering fast throughout, every slow upload ends with 408 or 429, and nothing of them is
left in the bucket or the database."""

from __future__ import annotations

import contextlib
import json
import math
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import text

from tests.harness.net import wait_for
from tests.harness.tasks import JOB, bucket_keys, clip

BOUNDARY = "slowslowslow"
DECLARED = 1_000_000  # bytes each slow upload says it will send
# a body must come at 100 kB/s after 2 s (a 1 MB body: 12 s); 3 s without a byte ends it
ENV = {
    "FACEFLEET_AUTH": "on",
    "FACEFLEET_UPLOAD_GRACE_S": "2",
    "FACEFLEET_UPLOAD_MIN_BYTES_PER_S": "100000",
    "FACEFLEET_UPLOAD_READ_TIMEOUT_S": "3",
    "FACEFLEET_API_HEADER_TIMEOUT_S": "3",
    "FACEFLEET_TENANT_MAX_UPLOADS": "4",
}
BUDGET_S = 2 + DECLARED / 100_000
# the reads stay fast: at most 250 ms p99 more than the same reads take on this machine with
# no slow client, measured just before. A stalled API answers nothing for seconds (health
# timed out at 8 s before the fix); the margin is for a loaded 2-core test machine, where a
# read already varies by ~150 ms (the figures on a quiet machine are in the README)
P99_ADDED_S = 0.250


@pytest.fixture(scope="module")
def guarded_api(fleet):  # type: ignore[no-untyped-def]
    proc, url = fleet.start_api("api-slow", ENV, workers=2)
    yield url
    proc.stop()


@dataclass
class Slow:
    """One raw connection that sends its request as slowly as it is told."""

    sock: socket.socket
    pending: bytes  # what is still to send, a byte per tick
    answer: bytes = b""
    ended_at: float | None = None
    reset: bool = False

    @property
    def status(self) -> int | None:
        found = re.match(rb"HTTP/1\.[01] (\d{3}) ", self.answer)
        return int(found.group(1)) if found else None


@dataclass
class Probe:
    """Timed reads of /healthz and a task's status, every 50 ms, in a thread."""

    api: str
    key: str
    task_id: str
    health: list[float] = field(default_factory=list)
    status: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    worst: list[tuple[float, float, str]] = field(default_factory=list)  # (latency, at, path)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        health, status = requests.Session(), requests.Session()
        began = time.perf_counter()
        status.headers["Authorization"] = f"Bearer {self.key}"
        while not self.stop.is_set():
            for session, url, into in (
                (health, f"{self.api}/healthz", self.health),
                (status, f"{self.api}/v1/tasks/{self.task_id}", self.status),
            ):
                started = time.perf_counter()
                try:
                    response = session.get(url, timeout=5)
                    if response.status_code != 200:
                        self.failures.append(f"{url}: {response.status_code}")
                except requests.RequestException as exc:
                    self.failures.append(f"{url}: {type(exc).__name__}")
                into.append(time.perf_counter() - started)
                self.worst.append((into[-1], started - began, url.rsplit("/", 1)[-1][:8]))
            time.sleep(0.05)


def _p99(samples: list[float]) -> float:
    """The nearest-rank 99th percentile."""
    return sorted(samples)[math.ceil(0.99 * len(samples)) - 1]


def _open(api: str, head: bytes, body: bytes) -> Slow:
    parts = urlsplit(api)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.setblocking(False)
    return Slow(sock, head + body)


def _opened(into: list[Slow], api: str, key: str, count: int, body: bytes) -> list[Slow]:
    into.extend(_open(api, _request_head(key), body) for _ in range(count))
    return into


def _request_head(key: str) -> bytes:
    return (
        f"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {DECLARED}\r\n\r\n"
    ).encode()


def _drive(conns: list[Slow], first: int, per_tick: int, until_s: float) -> None:
    """Send each connection's first ``first`` bytes at once, then ``per_tick`` bytes a second,
    reading whatever the server answers, until every one has ended or ``until_s`` passed."""
    selector = selectors.DefaultSelector()
    for conn in conns:
        _send(conn, first)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    deadline, next_tick = time.monotonic() + until_s, time.monotonic() + 1
    while time.monotonic() < deadline and any(c.ended_at is None for c in conns):
        for key, _ in selector.select(timeout=max(0.0, min(next_tick - time.monotonic(), 0.2))):
            conn = key.data
            try:
                data = conn.sock.recv(65536)
            except ConnectionResetError:
                data, conn.reset = b"", True
            conn.answer += data
            if not data:
                conn.ended_at = time.monotonic()
                selector.unregister(conn.sock)
        if per_tick and time.monotonic() >= next_tick:
            next_tick += 1
            for conn in conns:
                if conn.ended_at is None:
                    _send(conn, per_tick)
    for conn in conns:
        conn.sock.close()


def _send(conn: Slow, count: int) -> None:
    chunk, conn.pending = conn.pending[:count], conn.pending[count:]
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, BlockingIOError):
        conn.sock.send(chunk)  # fails once answered and closed: the answer is read from the socket


def _body() -> bytes:
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="target"; filename="in.mp4"\r\n\r\n'
    return part.encode() + b"\0" * 4096


@pytest.fixture
def tenant_key(operator, fleet, guarded_api, tmp_path):  # type: ignore[no-untyped-def]
    """A tenant, its key, and one task of it (for status reads)."""
    fleet.ensure_workers()  # whatever the test before left, the task has workers to end on
    tenant = operator.tenant()
    key = operator.key(tenant)
    created = requests.post(
        f"{guarded_api}/v1/tasks",
        files={"target": ("in.mp4", clip(tmp_path / "in.mp4").read_bytes())},
        data={"options": json.dumps(JOB)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    auth = {"Authorization": f"Bearer {key}"}
    wait_for(  # done: the workers' CPU is not what is measured
        lambda: (
            requests.get(f"{guarded_api}/v1/tasks/{task_id}", headers=auth, timeout=10).json()["state"]
            in ("succeeded", "failed")
        ),
        120,
        "the status task to end",
    )
    return tenant, key, task_id


def _probe_while(api: str, key: str, task_id: str, work) -> Probe:  # type: ignore[no-untyped-def]
    probe = Probe(api, key, task_id)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    try:
        work()
    finally:
        probe.stop.set()
        thread.join(10)
    return probe


def _under_load(
    api: str, key: str, task_id: str, conns: Callable[[], list[Slow]], first: int, per_tick: int
) -> tuple[Probe, Probe, float]:
    """(the reads with no slow client, for 5 s; the reads while the connections ``conns``
    opens are driven; when they were opened)."""
    for _ in range(10):  # warm: each process's connections are opened
        requests.get(f"{api}/healthz", timeout=5)
        requests.get(f"{api}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    quiet = _probe_while(api, key, task_id, lambda: time.sleep(5))
    _report("no slow client", quiet, [])
    started = time.monotonic()
    loaded = _probe_while(api, key, task_id, lambda: _drive(conns(), first, per_tick, until_s=BUDGET_S + 15))
    return quiet, loaded, started


def _fast_throughout(quiet: Probe, loaded: Probe) -> None:
    assert not loaded.failures, loaded.failures[:5]
    for reads in ("health", "status"):
        limit = _p99(getattr(quiet, reads)) + P99_ADDED_S
        assert _p99(getattr(loaded, reads)) < limit, f"{reads}: p99 over {limit * 1000:.0f} ms"


def _nothing_left(services, s3, tenant: str, kept_task: str) -> None:  # type: ignore[no-untyped-def]
    with services.engine.connect() as conn:
        tasks = conn.execute(text("SELECT id FROM tasks WHERE tenant = :t"), {"t": tenant}).scalars().all()
        pending = conn.execute(
            text("SELECT count(*) FROM pending_uploads WHERE prefix LIKE :p"), {"p": f"%/{tenant}/%"}
        ).scalar()
    assert tasks == [kept_task]
    assert pending == 0
    left = {key for key in bucket_keys(s3, f"tenants/{tenant}/") if f"/{kept_task}/" not in key}
    assert not left, sorted(left)[:5]


def _report(name: str, probe: Probe, conns: list[Slow]) -> None:
    statuses = sorted(str(c.status) for c in conns)
    print(
        f"{name}: healthz p99 {_p99(probe.health) * 1000:.1f} ms (max {max(probe.health) * 1000:.1f}, "
        f"n={len(probe.health)}), status p99 {_p99(probe.status) * 1000:.1f} ms "
        f"(max {max(probe.status) * 1000:.1f}); answers {dict((s, statuses.count(s)) for s in set(statuses))}; "
        "slowest (ms at s): "
        + ", ".join(f"{w * 1000:.0f}@{t:.1f} {p}" for w, t, p in sorted(probe.worst, reverse=True)[:5])
    )


def test_a_hundred_trickling_uploads_leave_health_and_status_fast(guarded_api, tenant_key, services, s3):  # type: ignore[no-untyped-def]
    tenant, key, task_id = tenant_key
    conns: list[Slow] = []
    head = len(_request_head(key))
    quiet, probe, started = _under_load(
        guarded_api, key, task_id, lambda: _opened(conns, guarded_api, key, 100, _body()), head + 1, 1
    )
    _report("trickle", probe, conns)
    _fast_throughout(quiet, probe)
    assert all(c.status in (408, 429) for c in conns), [
        c.answer[:80] for c in conns if c.status not in (408, 429)
    ]
    cut = [c for c in conns if c.status == 408]
    assert 1 <= len(cut) <= 4  # the tenant's slots; the rest were refused before their bodies
    assert all(b"application/problem+json" in c.answer for c in conns)
    assert max(c.ended_at - started for c in conns) < BUDGET_S + 5  # type: ignore[operator]
    _nothing_left(services, s3, tenant, task_id)


def test_uploads_that_stall_are_cut_after_the_read_timeout(guarded_api, tenant_key, services, s3):  # type: ignore[no-untyped-def]
    """1 KB of the body, then nothing: cut 3 s after the last byte (the read timeout)."""
    tenant, key, task_id = tenant_key
    conns: list[Slow] = []
    first = len(_request_head(key)) + 1024
    quiet, probe, started = _under_load(
        guarded_api, key, task_id, lambda: _opened(conns, guarded_api, key, 30, _body()), first, 0
    )
    _report("stall", probe, conns)
    _fast_throughout(quiet, probe)
    assert all(c.status in (408, 429) for c in conns)
    cut = [c for c in conns if c.status == 408]
    assert cut and all(b"no byte of the body arrived for 3 s" in c.answer for c in cut)
    assert max(c.ended_at - started for c in cut) < 3 + 3  # type: ignore[operator]
    _nothing_left(services, s3, tenant, task_id)


def test_headers_sent_slowly_are_cut(guarded_api, tenant_key):  # type: ignore[no-untyped-def]
    """A slowloris (a header byte a second) holds a connection 3 s at most, and no thread
    that health needs."""
    _tenant, key, task_id = tenant_key
    conns: list[Slow] = []
    quiet, probe, started = _under_load(
        guarded_api, key, task_id, lambda: _opened(conns, guarded_api, key, 40, b""), 10, 1
    )
    _report("slowloris", probe, conns)
    _fast_throughout(quiet, probe)
    assert all(c.ended_at is not None and c.ended_at - started < 3 + 2 for c in conns)
