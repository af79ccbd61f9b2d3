"""Faults: a worker killed mid-chunk, Redis losing everything, a chunk delivered twice,
cancellation, and a chunk that can never succeed."""

from __future__ import annotations

import time
import uuid

import requests
from sqlalchemy import select

from facefleet.records.db import Chunk, Task
from facefleet.task.segments import SEGMENTS_IN_FLIGHT
from tests.harness.net import wait_for
from tests.harness.stack import LEASE_TTL_S, REAPER_INTERVAL_S
from tests.harness.tasks import (
    FRAMES,
    JOB,
    SEGMENTS_PER_CHUNK,
    bucket_keys,
    clip,
    corrupt_keyframe,
    download,
    expect_identical_output,
    frame_indices,
    segment_writes,
    submit,
    wait_state,
)
from worker.reaper import RESEND_EVERY_TTLS


def _chunks(services, task_id: str) -> dict[int, Chunk]:
    with services.sessions() as session:
        return {c.index: c for c in session.scalars(select(Chunk).where(Chunk.task_id == task_id))}


def _chunk_in_progress(services, task_id: str, at_least: int = 2) -> int | None:
    """A chunk with some (but not all) segments checkpointed."""
    for index, done in services.state.checkpoints.saved(task_id).items():
        if at_least <= done < SEGMENTS_PER_CHUNK:
            return index
    return None


def test_killed_worker_chunk_resumes_on_another(api, fleet, services, s3, tmp_path, reference):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    index = wait_for(lambda: _chunk_in_progress(services, task_id), 60, "a chunk in progress")
    pid = int(_chunks(services, task_id)[index].worker.rsplit(":", 1)[1])
    victim = fleet.worker_by_pid(pid)
    killed_at = time.monotonic()
    victim.kill()
    fleet.start_worker(wait=False)

    def resumed() -> bool:  # taken again by another worker; the lost start spent no attempt
        chunk = _chunks(services, task_id)[index]
        return chunk.lost >= 1 and chunk.worker != f"{chunk.worker.rsplit(':', 1)[0]}:{pid}"

    wait_for(resumed, 30, "the killed chunk to resume on another worker")
    resume_s = time.monotonic() - killed_at
    assert resume_s < LEASE_TTL_S + REAPER_INTERVAL_S + 3, resume_s

    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)  # byte-identical to an uninterrupted run
    assert frame_indices(out) == list(range(FRAMES))
    writes = segment_writes(s3, task_id)
    assert len(writes) == 2 * SEGMENTS_PER_CHUNK
    redone = {key: count - 1 for key, count in writes.items() if count > 1}
    assert sum(redone.values()) <= 1, redone  # at most the segment in flight
    with services.sessions() as session:  # usage: every stored segment, the redone one twice
        processed = session.get(Task, task_id).frames_processed
    assert processed == FRAMES + sum(redone.values()) * JOB["segment_frames"], processed
    assert all(f"/{index:05d}/" in key for key in redone), redone


def test_redis_flushall_mid_job(api, services, tmp_path, reference):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    wait_for(lambda: _chunk_in_progress(services, task_id), 60, "a chunk in progress")
    services.state.redis.flushall()  # checkpoints, progress and leases: all gone
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)
    assert frame_indices(out) == list(range(FRAMES))


def test_duplicate_delivery_is_harmless(api, fleet, settings, services, s3, tmp_path):
    from api.queue import Producer

    options = {**JOB, "chunk_frames": FRAMES}  # one chunk of 12 segments
    task_id = submit(api, clip(tmp_path / "in.mp4"), options)
    wait_for(lambda: services.state.checkpoints.saved(task_id).get(0, 0) >= 1, 60, "the chunk to start")
    logs_before = sum(w.text().count("leased elsewhere") for w in fleet.workers)
    Producer(settings).chunk(task_id, 0)  # the same chunk, delivered again while it runs
    wait_for(
        lambda: sum(w.text().count("leased elsewhere") for w in fleet.workers) > logs_before,
        30,
        "the second delivery to be turned away",
    )
    assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"
    assert _chunks(services, task_id)[0].attempts == 1
    writes = segment_writes(s3, task_id)
    assert len(writes) == 12 and set(writes.values()) == {1}, writes


def test_cancel_stops_workers_within_a_segment(api, services, s3, tmp_path):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    wait_for(lambda: _chunk_in_progress(services, task_id, at_least=1), 60, "a chunk in progress")
    response = requests.post(f"{api}/v1/tasks/{task_id}/cancel", timeout=10)
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    at_cancel = segment_writes(s3, task_id)

    time.sleep(2.5)  # several segments' worth of time, had the workers not stopped
    after = segment_writes(s3, task_id)
    per_chunk_new: dict[str, int] = {}
    for key in set(after) - set(at_cancel):
        chunk = key.split("/")[-2]
        per_chunk_new[chunk] = per_chunk_new.get(chunk, 0) + 1
    # only the segments in flight at the cancel are stored: the one taking frames, and the
    # one before it (encoded already) that was being stored
    assert all(n <= SEGMENTS_IN_FLIGHT for n in per_chunk_new.values()), per_chunk_new
    states = {c.state.value for c in _chunks(services, task_id).values()}
    assert states <= {"cancelled", "succeeded"}, states
    assert wait_state(api, task_id, {"cancelled"})["state"] == "cancelled"
    assert not bucket_keys(s3, f"tasks/{task_id}/output")
    wait_for(lambda: not bucket_keys(s3, f"tasks/{task_id}/"), 10, "the cancelled task's files to go")
    assert not services.state.checkpoints.saved(task_id)
    again = requests.post(f"{api}/v1/tasks/{task_id}/cancel", timeout=10)
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"


def test_chunk_that_always_fails_fails_the_task(api, services, tmp_path):
    bad = corrupt_keyframe(clip(tmp_path / "in.mp4"), tmp_path / "bad.mp4", frame=60)  # in chunk 1
    task_id = submit(api, bad)
    body = wait_state(api, task_id, {"failed", "succeeded"}, timeout=90)
    assert body["state"] == "failed"
    assert "chunk 1" in body["error"] and "after 3 attempts" in body["error"], body["error"]
    assert "corrupt" in body["error"]
    chunks = _chunks(services, task_id)
    assert chunks[1].state.value == "failed" and chunks[1].attempts == 3
    time.sleep(2 * REAPER_INTERVAL_S + 1)  # no retry loop: nothing runs it again
    assert _chunks(services, task_id)[1].attempts == 3
    assert wait_state(api, task_id, {"failed"})["state"] == "failed"

    retried = requests.post(f"{api}/v1/tasks/{task_id}/retry", timeout=10)
    assert retried.status_code == 202 and retried.json()["state"] == "running"
    assert wait_state(api, task_id, {"failed", "succeeded"}, timeout=90)["state"] == "failed"


def test_work_whose_message_was_lost_is_sent_again(api, services, tmp_path):
    """A task row whose planning message never left (the API died in between), and a planned
    task whose chunk messages never left (the planner died in between): both finish."""
    from facefleet.config.options import JobOptions
    from facefleet.records import keys
    from facefleet.task.jobs import create_task
    from facefleet.task.planning import plan_task

    target = clip(tmp_path / "in.mp4")
    task_ids = [uuid.uuid4().hex for _ in range(2)]
    for task_id in task_ids:
        services.storage.put_file(keys.TaskKeys(task_id).target, target)
        create_task(
            services.ctx,
            task_id=task_id,
            target_key=keys.TaskKeys(task_id).target,
            source_keys=[],
            options=JobOptions(**JOB),
        )
    assert plan_task(services.ctx, task_ids[1]) == [0, 1]  # queued chunks, no messages sent

    deadline = LEASE_TTL_S * RESEND_EVERY_TTLS + 3 * REAPER_INTERVAL_S + 60
    for task_id in task_ids:
        body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"}, timeout=deadline)
        assert body["state"] == "succeeded", body
        out = tmp_path / f"{task_id}.mp4"
        download(api, task_id, out)
        assert frame_indices(out) == list(range(FRAMES))


def test_a_stitch_that_never_finishes_fails_the_task_instead_of_looping(services):
    """Each start of a task's stitch is counted; when every start dies (a stitch that gets
    its worker killed, say), the one past the limit fails the task with a reason."""
    from sqlalchemy import update

    from facefleet.config.options import JobOptions
    from facefleet.records import keys
    from facefleet.records.states import TaskState
    from facefleet.task.jobs import create_task, get_task
    from worker.policies import exhausted

    task = create_task(
        services.ctx, target_key=keys.TaskKeys("x").target, source_keys=[], options=JobOptions()
    )
    with services.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task.id).values(state=TaskState.STITCHING))
    limit = services.settings.chunk_max_attempts
    assert [exhausted(services, task.id, TaskState.STITCHING) for _ in range(limit)] == [False] * limit
    assert exhausted(services, task.id, TaskState.STITCHING)
    failed = get_task(services.ctx, task.id)
    assert failed.state == TaskState.FAILED
    assert (
        failed.error == f"stitching did not finish in {limit} attempts (its worker died or failed each time)"
    )


def test_after_redis_loses_everything_lost_work_is_sent_at_once(api, services, tmp_path):
    """A Redis broker loses its messages with its data: work left queued must not wait out
    the quiet spell (5 lease TTLs) before the reaper sends it again."""
    from facefleet.config.options import JobOptions
    from facefleet.records import keys
    from facefleet.task.jobs import create_task

    task_id = uuid.uuid4().hex
    services.storage.put_file(keys.TaskKeys(task_id).target, clip(tmp_path / "in.mp4"))
    create_task(
        services.ctx,
        task_id=task_id,
        target_key=keys.TaskKeys(task_id).target,
        source_keys=[],
        options=JobOptions(**JOB),
    )  # recorded, its planning message never sent
    services.state.redis.flushall()
    flushed = time.monotonic()
    wait_for(
        lambda: requests.get(f"{api}/v1/tasks/{task_id}", timeout=10).json()["state"] != "queued",
        LEASE_TTL_S * RESEND_EVERY_TTLS - 2,
        "the lost planning message to be sent again",
    )
    assert time.monotonic() - flushed < LEASE_TTL_S * RESEND_EVERY_TTLS
    assert wait_state(api, task_id, {"succeeded", "failed", "cancelled"})["state"] == "succeeded"
