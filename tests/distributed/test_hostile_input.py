"""Every hostile input a tenant tried (issue 24) answers a 4xx problem body, never a 500: a
NUL in a path id, a cursor, a filename, a URL or a query; a filename longer than its column;
a number of 5000 digits; JSON nested 20 000 deep; options of the wrong type; unknown model
names; a method a route does not have; requests gunicorn itself refuses. The API's log holds
no traceback afterwards."""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.harness.tasks import JOB, clip

BOUNDARY = "hostileboundary"


@pytest.fixture(scope="module")
def hostile_api(fleet):  # type: ignore[no-untyped-def]
    proc, url = fleet.start_api("api-hostile", {"FACEFLEET_AUTH": "on"})
    yield proc, url
    proc.stop()


@pytest.fixture(scope="module")
def keys(operator):  # type: ignore[no-untyped-def]
    tenant = operator.tenant()
    return operator.key(tenant), operator.key(tenant, "--admin")


def _form(filename: bytes, video: bytes, options: bytes = b"") -> bytes:
    parts = [
        b"--"
        + BOUNDARY.encode()
        + b'\r\nContent-Disposition: form-data; name="target"; filename="'
        + filename
        + b'"\r\nContent-Type: video/mp4\r\n\r\n'
        + video
        + b"\r\n"
    ]
    if options:
        parts.append(
            b"--"
            + BOUNDARY.encode()
            + b'\r\nContent-Disposition: form-data; name="options"\r\n\r\n'
            + options
            + b"\r\n"
        )
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _cases(video: bytes) -> list[tuple[str, str, str, dict, int]]:
    """(name, method, path, requests kwargs, expected status)."""
    form = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    deep = "[" * 20_000 + "]" * 20_000
    huge = "9" * 5000

    def options(**o):
        return {
            "data": _form(b"in.mp4", video, json.dumps({**JOB, **o}).encode()),
            "headers": form,
        }

    cases = [
        *[
            (f"NUL in the id ({method} {suffix or '/'})", method, f"/v1/tasks/x%00{suffix}", {}, 400)
            for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("POST", "/retry"))
        ],
        ("an id of 5000 characters", "GET", "/v1/tasks/" + "a" * 5000, {}, 404),
        ("NUL in a cursor", "GET", "/v1/tasks?cursor=%00", {}, 400),
        (
            "NUL inside a cursor",
            "GET",
            f"/v1/tasks?cursor={_cursor('2026-01-01T00:00:00|x' + chr(0))}",
            {},
            400,
        ),
        ("NUL in ?tenant= (admin)", "GET", "/v1/tasks?tenant=%00", {"admin": True}, 400),
        ("NUL in ?state=", "GET", "/v1/tasks?state=run%00ning", {}, 400),
        (
            "NUL in a filename",
            "POST",
            "/v1/tasks",
            {"data": _form(b"in\x00.mp4", video), "headers": form},
            400,
        ),
        (
            "a filename of 600 characters",
            "POST",
            "/v1/tasks",
            {"data": _form(b"a" * 600, video), "headers": form},
            400,
        ),
        (
            "NUL in target_url",
            "POST",
            "/v1/tasks",
            {"json": {"target_url": "https://example.com/a\u0000.mp4"}},
            400,
        ),
        (
            "NUL in target_url (form)",
            "POST",
            "/v1/tasks",
            {"files": {"target_url": (None, "https://x.example/\0")}},
            400,
        ),
        (
            "a 5000-digit number in the body",
            "POST",
            "/v1/tasks",
            {
                "data": f'{{"target_url": "https://e.com/a", "options": {{"crf": {huge}}}}}',
                "headers": {"Content-Type": "application/json"},
            },
            400,
        ),
        (
            "a 5000-digit number in form options",
            "POST",
            "/v1/tasks",
            {"data": _form(b"in.mp4", video, f'{{"crf": {huge}}}'.encode()), "headers": form},
            400,
        ),
        (
            "JSON nested 20000 deep",
            "POST",
            "/v1/tasks",
            {
                "data": f'{{"target_url": "https://e.com/a", "options": {deep}}}',
                "headers": {"Content-Type": "application/json"},
            },
            400,
        ),
        (
            "form options nested 20000 deep",
            "POST",
            "/v1/tasks",
            {"data": _form(b"in.mp4", video, deep.encode()), "headers": form},
            400,
        ),
        (
            "NaN in options",
            "POST",
            "/v1/tasks",
            {"data": _form(b"in.mp4", video, b'{"deadline_s": NaN}'), "headers": form},
            400,
        ),
        ('crf "18"', "POST", "/v1/tasks", options(crf="18"), 422),
        ("crf true", "POST", "/v1/tasks", options(crf=True), 422),
        (
            "a path as a model name",
            "POST",
            "/v1/tasks",
            {
                "data": _form(b"in.mp4", video, b'{"face_detector": "../../../../etc/passwd"}'),
                "headers": form,
            },
            422,
        ),
        ("a 60 KB model name", "POST", "/v1/tasks", options(swapper_model="m" * 60_000), 422),
        ("an unknown form field", "POST", "/v1/tasks", {"files": {"targett": ("in.mp4", b"x")}}, 400),
        (
            "a 151-character Idempotency-Key",
            "POST",
            "/v1/tasks",
            {"headers": {"Idempotency-Key": "k" * 151}, "json": {}},
            400,
        ),
        ("PUT on the tasks", "PUT", "/v1/tasks", {}, 405),
        ("PATCH on a task", "PATCH", "/v1/tasks/" + "0" * 32, {}, 405),
    ]
    return cases


# what the detail of some answers says (the others: see the names)
REASONS = {
    "NUL in a cursor": "control character",
    "NUL inside a cursor": "cursor is not one this API returned",
    "NUL in a filename": "file name contains a control character",
    "a filename of 600 characters": "longer than 500 characters",
    "NUL in target_url": "target_url contains a control character",
    "a 5000-digit number in the body": "more than 20 digits",
    "a 5000-digit number in form options": "more than 20 digits",
    "JSON nested 20000 deep": "nested deeper than 32",
    "form options nested 20000 deep": "nested deeper than 32",
    'crf "18"': "crf: Input should be a valid integer",
    "crf true": "crf: Input should be a valid integer",
    "a path as a model name": "face_detector: unknown model '../../../../etc/passwd'; known: det_10g",
    "a 60 KB model name": "swapper_model: String should have at most 100 characters",
}


def test_every_hostile_input_is_a_4xx_problem(hostile_api, keys, tmp_path):  # type: ignore[no-untyped-def]
    proc, api = hostile_api
    key, admin = keys
    video = clip(tmp_path / "in.mp4").read_bytes()
    wrong = []
    for name, method, path, kwargs, status in _cases(video):
        kwargs = dict(kwargs)
        who = admin if kwargs.pop("admin", False) else key
        headers = {"Authorization": f"Bearer {who}", **kwargs.pop("headers", {})}
        answer = requests.request(method, f"{api}{path}", headers=headers, timeout=60, **kwargs)
        problem = answer.headers.get("Content-Type") == "application/problem+json"
        detail = answer.json().get("detail", "") if problem else ""
        if answer.status_code != status or not problem or REASONS.get(name, "") not in detail:
            wrong.append((name, answer.status_code, answer.text[:200]))
        if status == 405:
            assert answer.headers.get("Allow"), name
    assert not wrong, wrong
    listed = requests.get(f"{api}/v1/tasks", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert listed["items"] == []  # nothing was accepted
    assert "Traceback" not in proc.text()


def _raw(api: str, request: bytes) -> bytes:
    parts = urlsplit(api)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: y\r\n" % n for n in range(120))
            + b"\r\n",
            431,
        ),
        (b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", 501),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["request line", "too many headers", "transfer coding", "long request line"],
)
def test_gunicorns_own_refusals_are_problem_bodies(hostile_api, request_bytes, status):  # type: ignore[no-untyped-def]
    _proc, api = hostile_api
    answer = _raw(api, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == status
