"""Inputs by URL, through the egress guard: a target served on loopback is fetched when
FACEFLEET_EGRESS_ALLOW opens loopback, and refused with the reason otherwise; redirects to
refused addresses, metadata addresses, file:// URLs and oversized bodies are refused, and no
request reaches a refused address."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from facefleet.records.db import Task
from tests.harness.stack import MAX_UPLOAD_BYTES
from tests.harness.tasks import FRAMES, JOB, clip, download, frame_indices, wait_state


class Served:
    """An HTTP server on a loopback address that counts what it was asked for."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.requests: list[str] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                served.requests.append(self.path)
                status, headers, body = routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def allowing_api(fleet) -> Iterator[str]:
    """An API that may fetch from 127.0.0.1 (only)."""
    with fleet.api_deployment("api-egress", {"FACEFLEET_EGRESS_ALLOW": "127.0.0.1/32"}) as url:
        yield url


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Served]:
    elsewhere = Served("127.0.0.2", {"/clip.mp4": (200, {}, b"never fetched")})
    video = clip(tmp_path / "in.mp4").read_bytes()
    served = Served(
        "127.0.0.1",
        {
            "/clip.mp4": (200, {"Content-Type": "video/mp4"}, video),
            "/moved": (302, {"Location": "/clip.mp4"}, b""),
            "/away": (302, {"Location": f"{elsewhere.url}/clip.mp4"}, b""),
            "/metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/huge.mp4": (200, {}, bytes(MAX_UPLOAD_BYTES + 1)),
        },
    )
    served.elsewhere = elsewhere  # type: ignore[attr-defined]
    yield served
    served.stop()
    elsewhere.stop()


def _submit_json(api: str, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{api}/v1/tasks", json=body, timeout=60)


def _task_count(services) -> int:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Task)) or 0)


def test_a_target_url_on_an_allowed_address_is_fetched(allowing_api, origin, tmp_path):
    created = _submit_json(allowing_api, {"target_url": f"{origin.url}/moved", "options": JOB})
    assert created.status_code == 201, created.text
    body = wait_state(allowing_api, created.json()["id"], {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    assert body["target_name"] == "moved"
    out = tmp_path / "out.mp4"
    download(allowing_api, body["id"], out)
    assert frame_indices(out) == list(range(FRAMES))
    # the multipart form takes the field too
    form = requests.post(
        f"{allowing_api}/v1/tasks",
        files={"target_url": (None, f"{origin.url}/clip.mp4"), "options": (None, json.dumps(JOB))},
        timeout=60,
    )
    assert form.status_code == 201, form.text
    assert origin.requests.count("/clip.mp4") == 2


@pytest.mark.parametrize(
    ("path", "where", "reason"),
    [
        ("/clip.mp4", "api", "loopback"),  # not opened by FACEFLEET_EGRESS_ALLOW
        ("/away", "allowing_api", "redirect"),  # to 127.0.0.2, outside the allowed /32
        ("/metadata", "allowing_api", "metadata"),
        ("/huge.mp4", "allowing_api", f"larger than {MAX_UPLOAD_BYTES}"),
    ],
)
def test_refused_urls_get_422_with_the_reason(request, services, origin, path, where, reason):
    api = request.getfixturevalue(where)
    before = _task_count(services)
    answer = _submit_json(api, {"target_url": f"{origin.url}{path}", "options": JOB})
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert reason in answer.json()["detail"], answer.json()
    assert origin.elsewhere.requests == []  # nothing reached the refused address
    if where == "api":
        assert origin.requests == []  # refused before any connection
    assert _task_count(services) == before  # nothing recorded


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "https://user:secret@example.com/video.mp4",
        "gopher://127.0.0.1:70/",
        "s3://someone-elses-bucket/video.mp4",
    ],
)
def test_urls_that_are_never_fetched(allowing_api, url):
    answer = _submit_json(allowing_api, {"target_url": url, "options": JOB})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("target_url"), answer.json()


def test_a_source_url_is_guarded_too(api, origin, tmp_path):
    answer = requests.post(
        f"{api}/v1/tasks",
        files={
            "target": ("in.mp4", clip(tmp_path / "in.mp4").read_bytes()),
            "source_url": (None, f"{origin.url}/clip.mp4"),
            "options": (None, json.dumps(JOB)),
        },
        timeout=60,
    )
    assert answer.status_code == 422 and answer.json()["detail"].startswith("source_url"), answer.text
    assert origin.requests == []


class Silent:
    """A TCP server on loopback that takes each connection and then says nothing (``trickle``:
    an answer's headers, then its body a byte a second), as a hung origin does."""

    def __init__(self, trickle: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/clip.mp4"
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.trickle, self.stopping = trickle, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.held.append(conn)
            if self.trickle:
                threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            while not self.stopping.wait(1.0):
                conn.sendall(b"\0")

    def stop(self) -> None:
        self.stopping.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["never-answers", "trickles-its-body"])
def test_a_url_server_that_hangs_is_given_up_on_within_the_deadline(fleet, services, trickle):
    """The fetch's one deadline (FACEFLEET_EGRESS_TIMEOUT_S) covers a server that never answers
    and one that trickles: the submission is refused naming it, in about the deadline, no task
    is left, and health reads stay fast meanwhile."""
    env = {"FACEFLEET_EGRESS_ALLOW": "127.0.0.1/32", "FACEFLEET_EGRESS_TIMEOUT_S": "3"}
    hung = Silent(trickle=trickle)
    before = _task_count(services)
    try:
        with fleet.api_deployment("api-egress-hung", env) as api:
            health: list[float] = []
            done = threading.Event()

            def probe() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    requests.get(f"{api}/healthz", timeout=10).raise_for_status()
                    health.append(time.monotonic() - started)
                    time.sleep(0.1)

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            started = time.monotonic()
            refused = _submit_json(api, {"target_url": hung.url, "options": JOB})
            took = time.monotonic() - started
            done.set()
            prober.join(15)
    finally:
        hung.stop()
    assert hung.accepted >= 1  # the API did reach it
    assert refused.status_code == 422, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "did not answer within 3 s" in refused.json()["detail"], refused.json()
    assert 2.5 <= took <= 15, took
    assert health and max(health) < 1.0, health  # a fetch holds no thread health reads need
    assert _task_count(services) == before
