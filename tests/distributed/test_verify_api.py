"""POST /v1/verify (issue 26): keyed, the upload limits, the sandboxed read; a face job's
output names its task to its own tenant and only its short id to another; the task says
whether its frames are marked and why its output is unsigned."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cli.commands.api_calls import download_output, get_status, submit_task
from tests.harness.provenance import tiny_clip
from tests.harness.stack import MAX_UPLOAD_BYTES
from tests.media import make_text_file

PROBLEM = "application/problem+json"
FACE_JOB = {"processors": "face_anonymizer", "face_detector": "yunet", "detector_size": 320}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _verify(api: str, path: Path, key: str | None) -> requests.Response:
    with open(path, "rb") as handle:
        return requests.post(
            f"{api}/v1/verify",
            files={"file": (path.name, handle)},
            headers=_auth(key) if key else {},
            timeout=180,
        )


def _finished(api: str, task_id: str, key: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = get_status(api, task_id, key)
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    pytest.fail(f"task {task_id} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def marked(keyed_api, operator, tmp_path_factory) -> dict[str, Any]:
    from tests.harness.provenance import yunet_folder

    yunet_folder()  # the workers find YuNet in the mirrors they inherit (skips where missing)
    tmp = tmp_path_factory.mktemp("verify")
    tenant = operator.tenant()
    key = operator.key(tenant)
    task = submit_task(keyed_api, tiny_clip(tmp), [], FACE_JOB, api_key=key)
    body = _finished(keyed_api, task["id"], key)
    assert body["state"] == "succeeded", body
    out = download_output(keyed_api, task["id"], tmp / "out.mp4", key)
    return {"task": body, "key": key, "out": out, "tmp": tmp}


def test_the_task_says_its_frames_are_marked_and_its_output_unsigned(marked):
    assert marked["task"]["provenance"] == {
        "watermark": True,
        "signed": False,
        "c2pa": "no signing certificate configured",
    }


def test_verify_names_the_task_to_its_tenant_only(keyed_api, operator, marked):
    answer = _verify(keyed_api, marked["out"], marked["key"])
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["provenance"] is True and report["manifest"] is None
    assert report["watermark"]["task_id"] == marked["task"]["id"]

    stranger = operator.key(operator.tenant())
    report = _verify(keyed_api, marked["out"], stranger).json()
    assert report["provenance"] is True and report["watermark"]["task_id"] is None
    assert report["watermark"]["short_id"] == marked["task"]["id"][:16]


def test_an_unmarked_video_has_no_provenance(keyed_api, operator, tmp_path):
    key = operator.key(operator.tenant())
    report = _verify(keyed_api, tiny_clip(tmp_path), key).json()
    assert report["provenance"] is False and report["watermark"] is None and report["manifest"] is None


def test_verify_needs_a_key_and_a_video_within_the_limits(keyed_api, operator, tmp_path):
    assert _verify(keyed_api, tiny_clip(tmp_path), None).status_code == 401
    key = operator.key(operator.tenant())
    answer = _verify(keyed_api, make_text_file(tmp_path / "notes.mp4"), key)
    assert answer.status_code == 422 and answer.headers["Content-Type"] == PROBLEM, answer.text
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    answer = _verify(keyed_api, big, key)
    assert answer.status_code == 413 and answer.headers["Content-Type"] == PROBLEM, answer.text
    answer = requests.post(f"{keyed_api}/v1/verify", data=b"x", headers=_auth(key), timeout=30)
    assert answer.status_code == 415 and answer.headers["Content-Type"] == PROBLEM
