"""No finished work lost, nothing left behind: the finish race, a stitch larger than the
worker's cache, a second stitcher, clean-up through a storage outage, deletion, retention,
and a planner whose scratch disk is full."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from facefleet.config.options import JobOptions
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, Usage, utcnow
from facefleet.records.states import ChunkState, TaskState
from facefleet.task.chunk_outcomes import ChunkOutcome, finish, hooks, stitch_finished
from facefleet.task.jobs import create_task
from tests.harness.net import wait_for
from tests.harness.skips import CI
from tests.harness.stack import MAX_CHUNKS_PER_TASK, REAPER_INTERVAL_S
from tests.harness.tasks import (
    FRAMES,
    bucket_keys,
    clip,
    expect_identical_output,
    frame_indices,
    status,
    submit,
    wait_state,
)

DONE = {"succeeded", "failed", "cancelled"}


@pytest.fixture(autouse=True)
def _no_made_up_tasks_left(services):
    """Tasks made up from rows alone are failed at the end: the reaper would else keep
    sending stitches for them to the fleet."""
    made.clear()
    yield
    from facefleet.task.jobs import fail_task

    for task_id in made:
        fail_task(services.ctx, task_id, "made up by a test")


made: list[str] = []


def _running_task_with_chunks(services, states: list[ChunkState]) -> str:
    task = create_task(services.ctx, target_key="unused", source_keys=[], options=JobOptions())
    with services.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task.id).values(state=TaskState.RUNNING))
        session.add_all(
            Chunk(task_id=task.id, index=i, frame_start=i, frame_end=i + 1, segments_total=1, state=state)
            for i, state in enumerate(states)
        )
    made.append(task.id)
    return task.id


def test_last_two_chunks_finishing_together_stitch_exactly_once(services):
    """Two workers' transactions on a task's last two chunks are held together after each
    marked its chunk, then let go at once: exactly one of them moves the task on, 50 times."""
    barrier = threading.Barrier(2, timeout=20)
    hooks.chunk_marked = lambda _task, _index: barrier.wait()
    try:
        for _ in range(50):
            task_id = _running_task_with_chunks(services, [ChunkState.RUNNING, ChunkState.RUNNING])
            outcomes: list[ChunkOutcome] = []

            def finish_one(task_id: str, index: int, outcomes: list[ChunkOutcome] = outcomes) -> None:
                outcomes.append(finish(services.ctx, task_id, index))

            threads = [threading.Thread(target=finish_one, args=(task_id, i)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(outcomes) == sorted([ChunkOutcome.STITCH, ChunkOutcome.SUCCEEDED]), outcomes
            with services.sessions() as session:
                assert session.get(Task, task_id).state == TaskState.STITCHING
    finally:
        hooks.chunk_marked = None


def test_a_running_task_whose_chunks_all_finished_is_moved_on(services):
    done = _running_task_with_chunks(services, [ChunkState.SUCCEEDED, ChunkState.SUCCEEDED])
    busy = _running_task_with_chunks(services, [ChunkState.SUCCEEDED, ChunkState.RUNNING])
    moved = stitch_finished(services.ctx)
    assert done in moved and busy not in moved
    assert stitch_finished(services.ctx) == []  # once
    with services.sessions() as session:
        assert session.get(Task, done).state == TaskState.STITCHING
        assert session.get(Task, busy).state == TaskState.RUNNING


def test_a_stitch_larger_than_the_workers_cache_succeeds(api, fleet, tmp_path, reference):
    target = clip(tmp_path / "in.mp4")
    # room for the target and the plan, not for the segments as well
    fleet.only_worker({"FACEFLEET_CACHE_MAX_BYTES": str(target.stat().st_size + 8000)})
    task_id = submit(api, target)
    body = wait_state(api, task_id, DONE)
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)
    assert frame_indices(out) == list(range(FRAMES))


def test_a_second_stitch_after_success_leaves_the_output_alone(
    api, fleet, settings, services, s3, tmp_path, reference
):
    from api.queue import Producer

    task_id = submit(api, clip(tmp_path / "in.mp4"))
    assert wait_state(api, task_id, DONE)["state"] == "succeeded"
    # the first stitcher tidies up after the state change, still holding its lease; a
    # stitch arriving then is turned away as leased: this one comes after, and must skip
    wait_for(lambda: not services.state.is_leased(task_id, "stitch"), 30, "the first stitcher done")
    stitched = sum(w.text().count("facefleet.stitch[") for w in fleet.workers)
    Producer(settings).stitch(task_id)  # the reaper or a redelivery sends it again
    wait_for(
        lambda: (
            sum(w.text().count("'skipped'") for w in fleet.workers) >= 1
            and sum(w.text().count("facefleet.stitch[") for w in fleet.workers) > stitched
        ),
        30,
        "the second stitch to run",
    )
    time.sleep(REAPER_INTERVAL_S * 2)
    assert keys.TaskKeys(task_id).output in bucket_keys(s3, keys.TaskKeys(task_id).prefix)
    assert status(api, task_id)["state"] == "succeeded"
    expect_identical_output(api, task_id, reference, tmp_path)


def test_a_cancel_while_storage_is_down_cleans_up_once_it_is_back(api, services, s3, tmp_path):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    wait_for(lambda: services.state.checkpoints.saved(task_id) or None, 60, "a chunk in progress")
    with s3.outage():
        response = requests.post(f"{api}/v1/tasks/{task_id}/cancel", timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "cancelled"
        time.sleep(2 * REAPER_INTERVAL_S)  # reaper passes that cannot reach the bucket
        with services.sessions() as session:  # the removal is recorded, still to do
            assert session.get(Task, task_id).cleanup == "all"
    wait_for(
        lambda: not bucket_keys(s3, keys.TaskKeys(task_id).prefix), 15, "the cancelled task's files to go"
    )

    def cleanup_recorded_done() -> bool:  # cleared just after the bucket agrees
        with services.sessions() as session:
            return session.get(Task, task_id).cleanup is None

    wait_for(cleanup_recorded_done, 5, "the clean-up to be recorded as done")
    assert not bucket_keys(s3, keys.TaskKeys(task_id).prefix)
    with services.sessions() as session:
        states = set(session.scalars(select(Chunk.state).where(Chunk.task_id == task_id)))
    assert states <= {ChunkState.CANCELLED, ChunkState.SUCCEEDED}, states


@pytest.mark.parametrize("when", ["finished", "running"])
def test_delete_removes_every_object_and_row(api, services, s3, tmp_path, when):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    if when == "finished":
        assert wait_state(api, task_id, DONE)["state"] == "succeeded"
    else:
        wait_for(lambda: services.state.checkpoints.saved(task_id) or None, 60, "a chunk in progress")
    with services.sessions() as session:
        month_before = session.scalars(select(Usage)).all()
        frames_before = sum(u.frames for u in month_before)
    response = requests.delete(f"{api}/v1/tasks/{task_id}", timeout=30)
    assert response.status_code == 204, response.text
    gone = requests.get(f"{api}/v1/tasks/{task_id}", timeout=10)
    assert gone.status_code == 404 and gone.headers["Content-Type"] == "application/problem+json"
    assert task_id not in {t["id"] for t in requests.get(f"{api}/v1/tasks", timeout=10).json()["items"]}
    assert requests.post(f"{api}/v1/tasks/{task_id}/retry", timeout=10).status_code == 404
    wait_for(lambda: not bucket_keys(s3, keys.TaskKeys(task_id).prefix), 20, "the task's objects to go")

    def rows_gone() -> bool:
        with services.sessions() as session:
            return (
                session.get(Task, task_id) is None
                and not session.scalars(select(Chunk).where(Chunk.task_id == task_id)).all()
            )

    wait_for(rows_gone, 20, "the task's rows to go")
    with services.sessions() as session:  # usage is kept for accounting
        assert sum(u.frames for u in session.scalars(select(Usage)).all()) >= frames_before > 0
    assert not services.state.checkpoints.saved(task_id)


def test_retention_removes_outputs_older_than_the_setting(api, services, settings, s3, tmp_path):
    from worker.reaper import _tidy

    task_id = submit(api, clip(tmp_path / "in.mp4"))
    assert wait_state(api, task_id, DONE)["state"] == "succeeded"
    fresh = submit(api, clip(tmp_path / "in.mp4"))
    assert wait_state(api, fresh, DONE)["state"] == "succeeded"
    with services.sessions.begin() as session:
        session.execute(
            update(Task).where(Task.id == task_id).values(finished_at=utcnow() - timedelta(days=3))
        )
    keeping = dataclasses.replace(services, settings=settings.model_copy(update={"retention_output_days": 2}))
    _tidy(keeping)
    assert keys.TaskKeys(task_id).output not in bucket_keys(s3, keys.TaskKeys(task_id).prefix)
    body = status(api, task_id)
    assert body["state"] == "succeeded" and body["output_expired_at"] and "output_url" not in body
    assert keys.TaskKeys(fresh).output in bucket_keys(s3, keys.TaskKeys(fresh).prefix)  # younger: kept
    assert "output_url" in status(api, fresh)


@pytest.fixture
def full_disk(tmp_path):
    """A scratch folder on a 16 KiB file system: the first download fills it."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        if CI:
            pytest.fail(f"cannot mount a small tmpfs: {mounted.stderr}")
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    yield folder
    for _ in range(20):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
            break
        time.sleep(0.5)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_planner_whose_disk_is_full_fails_the_task_at_once(api, fleet, full_disk, tmp_path):
    worker = fleet.only_worker({}, work_dir=full_disk)
    started = time.monotonic()
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    body = wait_state(api, task_id, DONE, timeout=30)
    assert body["state"] == "failed", body
    assert time.monotonic() - started < 15
    assert "scratch disk is full" in body["error"], body["error"]
    worker.stop()


def test_chunks_of_a_failed_task_end_stopped(services):
    from facefleet.task.jobs import fail_task

    task_id = _running_task_with_chunks(
        services, [ChunkState.SUCCEEDED, ChunkState.RUNNING, ChunkState.QUEUED]
    )
    assert fail_task(services.ctx, task_id, "chunk 9 failed")
    with services.sessions() as session:
        states = [
            c.state
            for c in session.scalars(select(Chunk).where(Chunk.task_id == task_id).order_by(Chunk.index))
        ]
    assert states == [ChunkState.SUCCEEDED, ChunkState.STOPPED, ChunkState.STOPPED]
    assert not fail_task(services.ctx, task_id, "again")  # a failed task stays as it failed


def test_chunk_frames_that_would_make_too_many_chunks_are_refused(api, services, s3, tmp_path):
    """The fleet allows MAX_CHUNKS_PER_TASK chunks a task: 96 one-frame chunks are refused."""
    with services.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Task))
    response = requests.post(
        f"{api}/v1/tasks",
        files={"target": ("in.mp4", clip(tmp_path / "in.mp4").read_bytes())},
        data={"options": '{"processors": "none", "chunk_frames": 1, "segment_frames": 1}'},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "chunk_frames" in detail and f"at most {MAX_CHUNKS_PER_TASK}" in detail, detail
    with services.sessions() as session:  # nothing was recorded
        assert session.scalar(select(func.count()).select_from(Task)) == before
