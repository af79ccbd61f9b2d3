"""The same fleet on the Redis broker: dispatch by priority works there too, and a FLUSHALL
mid-job (the broker's messages, the leases, the checkpoints: all gone) costs seconds."""

from __future__ import annotations

import time

import pytest

from tests.harness.net import wait_for
from tests.harness.tasks import (
    FRAMES,
    JOB,
    clip,
    expect_identical_output,
    frame_indices,
    status,
    submit,
    wait_state,
)

DONE = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def redis_fleet(fleet, redis_url):
    """One worker and an API whose broker is Redis (the usual workers are stopped: the
    dispatcher of any worker serves the whole deployment, over its own broker)."""
    env = {"FACEFLEET_BROKER_URL": redis_url}
    fleet.only_worker(env)  # stopped after the test, as the usual workers come back
    with fleet.api_deployment("api-redis-broker", env) as url:
        yield url


def test_redis_broker_flushall_mid_job(redis_fleet, services, tmp_path, reference):
    api = redis_fleet
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    wait_for(lambda: services.ctx.checkpoints.saved(task_id).get(0, 0) >= 1, 60, "the first chunk under way")
    services.state.redis.flushall()
    flushed = time.monotonic()
    # the work moves again: some chunk reports frames after the flush
    wait_for(lambda: sum(services.ctx.checkpoints.progress(task_id).values()) > 0, 30, "frames moving again")
    assert time.monotonic() - flushed < 30
    body = wait_state(api, task_id, DONE, timeout=120)
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)
    assert frame_indices(out) == list(range(FRAMES))


def test_redis_broker_priority(redis_fleet, services, tmp_path):
    api = redis_fleet
    long_id = submit(
        api, clip(tmp_path / "in.mp4"), {**JOB, "chunk_frames": 8, "segment_frames": 4, "priority": 1}
    )
    wait_for(lambda: status(api, long_id)["progress"]["frames_done"] > 0, 60, "the long task processing")
    urgent = submit(api, clip(tmp_path / "in.mp4"), {**JOB, "chunk_frames": FRAMES, "priority": 9})
    assert wait_state(api, urgent, DONE, timeout=60)["state"] == "succeeded"
    assert status(api, long_id)["state"] == "running"
    assert wait_state(api, long_id, DONE, timeout=90)["state"] == "succeeded"
