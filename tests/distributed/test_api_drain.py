"""The API drains on SIGTERM: a request in flight (an upload half sent) is answered, no new
connection is taken, and the server exits."""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

import requests

from cli.commands.api_calls import MultipartBody
from tests.harness.net import wait_for
from tests.harness.tasks import JOB, clip, status


def _read_by_server(server_port: int, client_port: int) -> bool:
    """Nothing of the connection waits in either kernel queue: the server's process read it."""
    queues = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        queues[(local, remote)] = [int(n, 16) for n in fields[4].split(":")]  # tx, rx
    server_side, client_side = queues.get((server_port, client_port)), queues.get((client_port, server_port))
    return bool(server_side and client_side) and server_side[1] == 0 and client_side[0] == 0


def test_sigterm_lets_the_upload_in_flight_finish(fleet, tmp_path):
    proc, url = fleet.start_api("api-drain", {}, workers=1)
    body = MultipartBody([("options", json.dumps(JOB))], [("target", clip(tmp_path / "in.mp4"))])
    data = b"".join(body)
    address = urlsplit(url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    conn.putrequest("POST", "/v1/tasks")
    conn.putheader("Content-Type", body.content_type)
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    conn.send(data[: len(data) // 2])
    # in flight: a handler thread has read what was sent (until then the connection waits in
    # gunicorn's poller, and a shutdown drops it like any connection not yet taken up)
    client_port = conn.sock.getsockname()[1]
    wait_for(lambda: _read_by_server(address.port, client_port), 30, "the server to read the first half")

    proc.popen.send_signal(signal.SIGTERM)  # gunicorn's master: graceful shutdown
    proc.wait_for_log("Handling signal: term", 10)
    try:
        refused = requests.get(f"{url}/healthz", timeout=3)
    except requests.RequestException:
        refused = None
    assert refused is None, "a new request was taken during the drain"

    conn.send(data[len(data) // 2 :])
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 201, answer
    assert status(fleet.api_url, answer["id"])["state"] in {
        "queued",
        "planning",
        "running",
        "stitching",
        "succeeded",
    }
    assert proc.popen.wait(30) == 0, proc.text()[-2000:]
