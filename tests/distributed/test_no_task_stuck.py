"""No task stuck, no attempt burned by the weather: a worker killed inside a chunk's dead
letter, a failed chunk under a running task, two storage outages far apart in one chunk's
life, a retry after the lost-worker budget, and a stitch retried long after its chunks ended
that meets an outage. Each ends as a user expects, with no attempt spent on a service."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from facefleet.records.db import Chunk, Task, utcnow
from tests.harness.net import wait_for
from tests.harness.stack import LOST_WORKER_BUDGET
from tests.harness.tasks import (
    SEGMENTS_PER_CHUNK,
    clip,
    corrupt_keyframe,
    expect_identical_output,
    submit,
    wait_state,
)

DONE = {"succeeded", "failed", "cancelled"}
ACTIVE = {"planning", "running", "stitching"}


@pytest.fixture
def own_workers(fleet):  # type: ignore[no-untyped-def]
    """The test starts the workers it needs (the usual ones are back after it)."""
    fleet.stop_workers()
    return fleet


def _chunks(services, task_id: str) -> dict[int, Chunk]:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        return {c.index: c for c in session.scalars(select(Chunk).where(Chunk.task_id == task_id))}


def _keyed(keyed_api: str, key: str, target, options=None) -> str:  # type: ignore[no-untyped-def]
    return submit(keyed_api, target, options, api_key=key)


def _state(keyed_api: str, key: str, task_id: str) -> dict:  # type: ignore[type-arg]
    response = requests.get(
        f"{keyed_api}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _wait_keyed(keyed_api: str, key: str, task_id: str, states: set[str], timeout: float = 120) -> dict:  # type: ignore[type-arg]
    return wait_for(  # type: ignore[no-any-return]
        lambda: (body := _state(keyed_api, key, task_id))["state"] in states and body,
        timeout,
        f"task {task_id} in {states}",
        interval=0.1,
    )


def test_a_worker_killed_inside_a_dead_letter_leaves_no_task_running(
    keyed_api, own_workers, operator, services, tmp_path
):
    """The worker dies between its chunk's failure and its task's: neither is written, the
    chunk's lease expires, another worker takes it, and the task fails with the chunk's
    reason; the tenant's next task (max-running 1) then runs."""
    tenant = operator.tenant("--max-running", "1")
    key = operator.key(tenant)
    fleet = own_workers
    victim = fleet.start_worker(extra_env={"FACEFLEET_TEST_KILL_AT_DEAD_LETTER": "1"})
    bad = _keyed(keyed_api, key, corrupt_keyframe(clip(tmp_path / "in.mp4"), tmp_path / "bad.mp4", 60))
    _wait_keyed(keyed_api, key, bad, ACTIVE | DONE)
    following = _keyed(keyed_api, key, clip(tmp_path / "in.mp4"))
    wait_for(lambda: not victim.alive(), 120, "the worker to die in the dead letter")
    assert _state(keyed_api, key, bad)["state"] == "running"  # nothing half-written
    assert {c.state.value for c in _chunks(services, bad).values()} <= {"running", "queued", "succeeded"}
    fleet.start_worker()
    body = _wait_keyed(keyed_api, key, bad, DONE, timeout=120)
    assert body["state"] == "failed", body
    assert "chunk 1" in body["error"] and "corrupt" in body["error"], body["error"]
    assert _chunks(services, bad)[1].state.value == "failed"
    assert _wait_keyed(keyed_api, key, following, DONE, timeout=120)["state"] == "succeeded"


def test_the_reaper_ends_a_running_task_that_holds_a_failed_chunk(
    keyed_api, own_workers, operator, services, tmp_path
):
    """Rows split another way (an older version, a hand edit): a running task whose chunk
    failed ends within a reaper pass or two, with that chunk's reason, and frees its slot."""
    tenant = operator.tenant("--max-running", "1")
    key = operator.key(tenant)
    own_workers.start_worker(pause=2.0)
    stuck = _keyed(keyed_api, key, clip(tmp_path / "in.mp4"))
    _wait_keyed(keyed_api, key, stuck, {"running"})
    following = _keyed(keyed_api, key, clip(tmp_path / "in.mp4"))
    with services.sessions.begin() as session:
        session.execute(
            update(Chunk)
            .where(Chunk.task_id == stuck, Chunk.index == 1)
            .values(state="failed", error="the target is corrupt at frame 60", finished_at=utcnow())
        )
    body = _wait_keyed(keyed_api, key, stuck, DONE, timeout=15)
    assert body["state"] == "failed", body
    assert body["error"] == "chunk 1 failed: the target is corrupt at frame 60", body["error"]
    assert _wait_keyed(keyed_api, key, following, DONE, timeout=120)["state"] == "succeeded"


def test_two_storage_outages_far_apart_in_one_chunk_spend_nothing(
    api, own_workers, services, s3, tmp_path, reference
):
    """Patience is measured from the first failure since the chunk last made progress: an
    outage, more than FACEFLEET_INFRA_RETRY_S of good work, another outage: the chunk rides
    out both, no attempt spent, and the output is the uninterrupted one's."""
    patience_s = 12.0
    own_workers.start_worker(pause=3.0, extra_env={"FACEFLEET_INFRA_RETRY_S": str(patience_s)})
    task_id = submit(api, clip(tmp_path / "in.mp4"))

    def stored(index: int = 0) -> int:
        return services.state.checkpoints.saved(task_id).get(index, 0)

    wait_for(lambda: stored() >= 1, 60, "a segment of chunk 0")
    first_outage = time.monotonic()
    with s3.outage():
        time.sleep(5)
    after_first = stored()
    wait_for(lambda: stored() > after_first, 60, "chunk 0 to store a segment after the outage")
    wait_for(lambda: time.monotonic() - first_outage > patience_s + 1, 60, "the patience to pass")
    assert stored() < SEGMENTS_PER_CHUNK, "chunk 0 ended before the second outage: nothing was tested"
    with s3.outage():
        time.sleep(5)
    body = wait_state(api, task_id, DONE, timeout=180)
    assert body["state"] == "succeeded", body
    expect_identical_output(api, task_id, reference, tmp_path)
    assert [c.attempts for _, c in sorted(_chunks(services, task_id).items())] == [1, 1]


def test_a_task_failed_after_its_lost_worker_budget_runs_again_when_retried(
    api, own_workers, services, tmp_path, reference
):
    fleet = own_workers
    first = fleet.start_worker(pause=1.0)
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    index = wait_for(
        lambda: next((i for i, c in _chunks(services, task_id).items() if c.state.value == "running"), None),
        60,
        "a running chunk",
    )
    with services.sessions.begin() as session:  # as if its worker had been lost that often already
        session.execute(
            update(Chunk)
            .where(Chunk.task_id == task_id, Chunk.index == index)
            .values(lost=LOST_WORKER_BUDGET - 1)
        )
    first.kill()
    fleet.start_worker()
    body = wait_state(api, task_id, DONE, timeout=60)
    assert body["state"] == "failed" and f"lost {LOST_WORKER_BUDGET} times" in body["error"], body

    retried = requests.post(f"{api}/v1/tasks/{task_id}/retry", timeout=10)
    assert retried.status_code == 202, retried.text
    assert retried.json()["retries"] == 1
    body = wait_state(api, task_id, DONE, timeout=120)
    assert body["state"] == "succeeded", body
    assert body["retries"] == 1
    expect_identical_output(api, task_id, reference, tmp_path)


def test_a_stitch_retried_long_after_its_chunks_rides_out_an_outage(
    api, own_workers, services, s3, tmp_path, reference
):
    """The chunks finished 20 minutes ago and the stitch failed; the user retries it while
    object storage is down for 10 s: the stitch waits the outage out (its patience counts
    from its own first failure) and the output is the uninterrupted one's."""
    from facefleet.task.chunks import process_chunk
    from facefleet.task.jobs import fail_task
    from facefleet.task.planning import plan_task

    task_id = submit(api, clip(tmp_path / "in.mp4"))
    for index in plan_task(services.ctx, task_id):
        process_chunk(services.ctx, task_id, index)
    assert _task(services, task_id).state.value == "stitching"
    fail_task(services.ctx, task_id, "stitch failed: object storage was unavailable for 900 s")
    with services.sessions.begin() as session:
        session.execute(
            update(Chunk).where(Chunk.task_id == task_id).values(finished_at=utcnow() - timedelta(minutes=20))
        )
    own_workers.ensure_workers()  # the chunks were the test's own; the stitch is the workers'
    with s3.outage():
        retried = requests.post(f"{api}/v1/tasks/{task_id}/retry", timeout=10)
        assert retried.status_code == 202 and retried.json()["state"] == "stitching", retried.text
        time.sleep(10)
    body = wait_state(api, task_id, DONE, timeout=120)
    assert body["state"] == "succeeded", body
    expect_identical_output(api, task_id, reference, tmp_path)


def _task(services, task_id: str) -> Task:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task
