"""The HTTP API's refusals (problem bodies, nothing left behind), health, readiness, metrics."""

from __future__ import annotations

import io
import json

import pytest
import requests
from sqlalchemy import func, select

from facefleet.records.db import Task
from tests.harness.stack import MAX_UPLOAD_BYTES
from tests.harness.tasks import bucket_keys, clip
from tests.media import make_text_file

PROBLEM = "application/problem+json"


@pytest.fixture
def nothing_left(services, s3):
    """Asserts that the test left no task row and no object behind."""

    def snapshot():
        with services.sessions() as session:
            rows = session.scalar(select(func.count()).select_from(Task))
        return rows, bucket_keys(s3)

    before = snapshot()
    yield
    assert snapshot() == before


def _post(api, files, options=None, **kwargs):
    data = {"options": json.dumps(options)} if options is not None else {}
    return requests.post(f"{api}/v1/tasks", files=files, data=data, timeout=30, **kwargs)


def _problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_missing_target(api, nothing_left):
    body = _problem(_post(api, {"source": ("face.png", b"x")}, {"processors": "none"}), 400)
    assert "target" in body["detail"]


def test_unknown_option(api, tmp_path, nothing_left):
    target = clip(tmp_path / "in.mp4").read_bytes()
    body = _problem(_post(api, {"target": ("in.mp4", target)}, {"processors": "none", "colour": "red"}), 422)
    assert "colour" in body["detail"] and "unknown option" in body["detail"]


def test_invalid_option_value(api, tmp_path, nothing_left):
    target = clip(tmp_path / "in.mp4").read_bytes()
    _problem(_post(api, {"target": ("in.mp4", target)}, {"processors": "none", "crf": 99}), 422)


def test_swapper_without_source(api, tmp_path, nothing_left):
    target = clip(tmp_path / "in.mp4").read_bytes()
    body = _problem(_post(api, {"target": ("in.mp4", target)}, {"processors": "face_swapper"}), 400)
    assert "source" in body["detail"]


def test_target_that_is_not_a_video(api, tmp_path, nothing_left):
    text = make_text_file(tmp_path / "notes.mp4").read_bytes()
    body = _problem(_post(api, {"target": ("notes.mp4", text)}, {"processors": "none"}), 422)
    assert "notes.mp4" in body["detail"]


def test_oversized_upload_is_refused_while_streaming(api, nothing_left):
    big = io.BytesIO(b"\0" * (MAX_UPLOAD_BYTES + 1024 * 1024))
    body = _problem(_post(api, {"target": ("big.mp4", big)}, {"processors": "none"}), 413)
    assert body.get("limit") == MAX_UPLOAD_BYTES, body


def test_neither_multipart_nor_json(api, nothing_left):
    response = requests.post(
        f"{api}/v1/tasks", data=b"target=x", headers={"Content-Type": "text/plain"}, timeout=10
    )
    _problem(response, 415)
    # JSON names its inputs by URL; a file field there is refused with the fields it takes
    response = requests.post(f"{api}/v1/tasks", json={"target": "x"}, timeout=10)
    assert "target_url" in _problem(response, 400)["detail"]


def test_bad_options_json(api, tmp_path, nothing_left):
    target = clip(tmp_path / "in.mp4").read_bytes()
    response = requests.post(
        f"{api}/v1/tasks", files={"target": ("in.mp4", target)}, data={"options": "{nope"}, timeout=10
    )
    _problem(response, 400)


def test_unknown_field(api, tmp_path, nothing_left):
    target = clip(tmp_path / "in.mp4").read_bytes()
    _problem(_post(api, {"target": ("in.mp4", target), "extra": ("x", b"1")}, {}), 400)


@pytest.mark.parametrize("method,path", [("get", ""), ("post", "/cancel"), ("post", "/retry")])
def test_unknown_id(api, method, path, nothing_left):
    response = getattr(requests, method)(f"{api}/v1/tasks/{'0' * 32}{path}", timeout=10)
    _problem(response, 404)


def test_list_with_bad_state(api):
    _problem(requests.get(f"{api}/v1/tasks?state=sleeping", timeout=10), 400)
    _problem(requests.get(f"{api}/v1/tasks?cursor=!!!", timeout=10), 400)


def test_health_readiness_metrics(api, reference):
    assert requests.get(f"{api}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "bucket": "ok"}
    text = requests.get(f"{api}/metrics", timeout=10).text
    for name in (
        "facefleet_http_requests_total",
        'facefleet_tasks{state="succeeded"}',
        "facefleet_queue_depth",
        "facefleet_frames_processed_total",
        "facefleet_chunk_duration_seconds_bucket",
    ):
        assert name in text, name


def _app_with(settings, **dead):
    """An API app in this process whose named services point at a port nobody listens on."""
    from api.app import create_app
    from tests.harness.net import free_port

    urls = {
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
    }
    return create_app(settings.model_copy(update={k: urls[k] for k in dead})).test_client()


def test_unreachable_storage_is_a_503_problem(settings, tmp_path, nothing_left):
    client = _app_with(settings, s3_endpoint_url=True)
    target = clip(tmp_path / "in.mp4")
    with open(target, "rb") as handle:
        response = client.post("/v1/tasks", data={"target": (handle, "in.mp4"), "options": "{}"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.headers["Content-Type"] == PROBLEM
    assert "object storage" in response.json["detail"] and "127.0.0.1" not in response.json["detail"]


def test_status_answers_while_redis_is_unreachable(settings, services, tmp_path):
    from facefleet.config.options import JobOptions
    from facefleet.records import keys
    from facefleet.task.jobs import create_task

    task = create_task(
        services.ctx, target_key=keys.TaskKeys("x").target, source_keys=[], options=JobOptions()
    )
    response = _app_with(settings, redis_url=True).get(f"/v1/tasks/{task.id}")
    assert response.status_code == 200, response.json
    assert response.json["state"] == "queued" and response.json["progress"]["frames_done"] == 0
