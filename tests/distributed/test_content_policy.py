"""The content policy (issue 26) through the API with a real worker: ``block`` with a
classifier that flags every frame fails the task with reason content_policy and leaves
nothing of it in the bucket (listed key by key under the task); ``flag`` succeeds, flagged."""

from __future__ import annotations

import pytest

from facefleet.records import keys
from tests.faces.models import CLASSIFIER_UNSAFE, write_test_models
from tests.harness.net import wait_for
from tests.harness.tasks import JOB, bucket_keys, clip, status, submit, wait_state

DONE = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_test_models(tmp_path_factory.mktemp("classifiers"))


def _policy_worker(fleet, manifest, policy: str) -> None:
    fleet.only_worker(
        {
            "FACEFLEET_MODEL_MANIFEST": str(manifest),
            "FACEFLEET_CONTENT_POLICY": policy,
            "FACEFLEET_CONTENT_POLICY_MODEL": CLASSIFIER_UNSAFE,
        }
    )  # stopped after the test, as the usual workers come back


def test_block_fails_the_task_and_keeps_nothing(fleet, api, s3, manifest, tmp_path):
    _policy_worker(fleet, manifest, "block")
    task_id = submit(api, clip(tmp_path / "in.mp4"), JOB)
    body = wait_state(api, task_id, DONE, timeout=120)
    assert body["state"] == "failed", body
    assert body["reason"] == "content_policy", body
    assert "content_policy" in body["error"]
    prefix = keys.TaskKeys(task_id).prefix
    wait_for(lambda: not bucket_keys(s3, prefix), 90, "the blocked task's files removed")
    assert bucket_keys(s3, prefix) == set()
    assert status(api, task_id)["state"] == "failed"


def test_flag_succeeds_flagged(fleet, api, manifest, tmp_path):
    _policy_worker(fleet, manifest, "flag")
    task_id = submit(api, clip(tmp_path / "in.mp4"), JOB)
    body = wait_state(api, task_id, DONE, timeout=120)
    assert body["state"] == "succeeded", body
    verdict = body["content_policy"]
    assert verdict["flagged"] is True, body
    # 96 frames in 2 chunks of 48, sampled every 50th and at each chunk's first: 0, 48, 50
    assert verdict["samples"] == 3 and verdict["score"] > 0.99
