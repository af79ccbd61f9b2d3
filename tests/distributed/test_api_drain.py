"""The API drains on SIGTERM: a request in flight (an upload half sent) is answered, no new
connection is taken, and the server exits."""

from __future__ import annotations

import http.client
import json
import signal
from urllib.parse import urlsplit

import requests

from cli.commands.client import MultipartBody
from tests.distributed.helpers import JOB, clip, status


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
