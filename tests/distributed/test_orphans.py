"""Objects nothing else removes: what an API killed mid-upload stored before its task row
existed, and what a late writer stores under a task's prefix after its clean-up or its
DELETE. The reaper's sweep removes them once the grace period is over."""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time

import requests
from sqlalchemy import select

from facefleet.config.errors import InvalidTransition
from facefleet.records import keys
from facefleet.records.db import PendingUpload, Task
from facefleet.records.states import TaskState
from facefleet.task.jobs import cancel_task
from tests.harness.net import wait_for
from tests.harness.services import S3Server
from tests.harness.tasks import bucket_keys, clip, submit, wait_state

GRACE_S = 4
BOUNDARY = "orphan-test-boundary"
PART = 256 * 1024


def unfinished(s3: S3Server, prefix: str) -> list[str]:
    found = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix)
    return [upload["Key"] for upload in found.get("Uploads", [])]


def sweeper(fleet, services=None) -> None:  # type: ignore[no-untyped-def]
    """One worker, whose reaper sweeps with a short grace period; with ``services``, once
    nothing earlier tests left is under way (the one worker would take it first)."""
    if services is not None:
        _end_leftovers(services)
    fleet.only_worker({"FACEFLEET_ORPHAN_GRACE_S": str(GRACE_S)})


def _end_leftovers(services, patience: float = 15) -> None:  # type: ignore[no-untyped-def]
    """Give the tasks earlier tests left under way ``patience`` seconds to end, then cancel
    them as their tenant would: a test that needs one worker to itself must not wait behind
    them (under load, CI once saw the one worker busy with them for minutes)."""
    under_way = [TaskState(name) for name in ("queued", "planning", "running", "stitching")]

    def left() -> list[str]:
        with services.sessions() as session:
            return list(session.scalars(select(Task.id).where(Task.state.in_(under_way))))

    deadline = time.monotonic() + patience
    while left() and time.monotonic() < deadline:
        time.sleep(1)
    for task_id in left():
        with contextlib.suppress(InvalidTransition):  # it ended meanwhile
            cancel_task(services.ctx, task_id)
        services.state.cancel_flags.set(task_id)  # a running chunk stops at its next segment
    wait_for(lambda: not left(), 5, "the leftovers cancelled")


def slow_upload(url: str, stop: threading.Event) -> None:
    """A multipart submission: a source image, then a target of which 9 MiB come at once and
    the rest a trickle, until ``stop`` (or the API's death)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/v1/tasks")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(40 * 2**20))
    conn.endheaders()
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=%s; filename=%s\r\n\r\n"
    try:
        conn.send((head % ('"source"', '"face.png"')).encode() + os.urandom(2000) + b"\r\n")
        conn.send((head % ('"target"', '"clip.mp4"')).encode())
        for _ in range(36):
            conn.send(os.urandom(PART))
        while not stop.wait(0.05):
            conn.send(b"\0" * 1024)
    except OSError:
        pass  # the API was killed under it
    finally:
        conn.close()


def test_an_api_killed_mid_upload_leaves_nothing_after_the_grace_period(api, fleet, services, s3):
    sweeper(fleet)
    before = bucket_keys(s3, "tasks/")
    proc, url = fleet.start_api(
        "api-killed",
        {"FACEFLEET_MAX_UPLOAD_BYTES": str(64 * 2**20), "FACEFLEET_S3_MULTIPART_THRESHOLD": str(5 * 2**20)},
    )
    stop = threading.Event()
    sender = threading.Thread(target=slow_upload, args=(url, stop), daemon=True)
    sender.start()
    try:
        source = wait_for(
            lambda: next(iter(bucket_keys(s3, "tasks/") - before), None), 60, "the source stored"
        )
        prefix = source.rsplit("/input/", 1)[0] + "/"
        wait_for(lambda: unfinished(s3, prefix), 60, "a part of the target stored")
        with services.sessions() as session:  # recorded before its first byte was stored
            assert session.scalar(select(PendingUpload.prefix).where(PendingUpload.prefix == prefix))
        proc.kill()  # SIGKILL, mid-upload: no row, no clean-up of its own
    finally:
        stop.set()
        sender.join(10)
    wait_for(
        lambda: not bucket_keys(s3, prefix) and not unfinished(s3, prefix),
        GRACE_S + 60,
        "the reaper to sweep the killed upload's objects and parts",
        interval=0.5,
    )
    with services.sessions() as session:
        assert session.scalar(select(PendingUpload).where(PendingUpload.prefix == prefix)) is None


def test_a_late_writer_after_the_clean_up_or_a_delete_is_swept(api, fleet, services, s3, tmp_path):
    sweeper(fleet, services)
    target = clip(tmp_path / "clip.mp4")
    # one worker takes them in turn: the kept task ends last, and its late write comes soon
    # after its end, while the sweep still looks at ended tasks (a few grace periods)
    deleted, kept = submit(api, target), submit(api, target)
    assert wait_state(api, deleted, {"succeeded", "failed"}, timeout=120)["state"] == "succeeded"
    assert requests.delete(f"{api}/v1/tasks/{deleted}", timeout=10).status_code in (200, 202, 204)
    wait_for(lambda: not bucket_keys(s3, keys.TaskKeys(deleted).prefix), 30, "the DELETE's clean-up")
    assert wait_state(api, kept, {"succeeded", "failed"}, timeout=120)["state"] == "succeeded"
    time.sleep(0.5)
    late = [keys.TaskKeys(task_id).segment(0, 0) for task_id in (kept, deleted)]
    for key in late:  # a holder that lost its lease stores a segment after all
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"late segment")
    wait_for(
        lambda: not any(bucket_keys(s3, key) for key in late),
        GRACE_S * 2 + 30,
        "the sweep to remove the late writes",
        interval=0.5,
    )
    assert bucket_keys(s3, keys.TaskKeys(kept).prefix) == {keys.TaskKeys(kept).output}  # its output stays


def test_the_slot_counts_of_workers_gone_are_pruned(services):
    state = services.state
    state.announce_worker("gone-node@test", 2, ttl_s=0.01)
    state.announce_worker("live-node@test", 1, ttl_s=30)
    time.sleep(0.05)
    try:
        state.worker_slots()
        counted = state.redis.hkeys(state.keys.marker("worker-slots"))
        assert "gone-node@test" not in counted and "live-node@test" in counted
    finally:
        state.withdraw_worker("live-node@test")


def test_task_busy_reads_the_leases_of_the_task_only(services):
    state = services.state
    lease = state.chunk_lease("busy-task", 3)
    assert not state.task_busy("busy-task")
    assert lease.acquire(heartbeat=False)
    assert state.task_busy("busy-task") and not state.task_busy("other-task")
    lease.release()
    assert not state.task_busy("busy-task")


def test_database_connections_have_tcp_keepalives_and_a_user_timeout(pg_url):
    from facefleet.records.engine import make_engine

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            params = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert params["keepalives"] == "1" and int(params["keepalives_idle"]) > 0, params
    assert int(params["tcp_user_timeout"]) > 0, params


def test_frames_whose_accounting_failed_are_counted_at_the_chunk_s_finish(api, services, tmp_path):
    from sqlalchemy import update

    from facefleet.records.db import Chunk, Task
    from facefleet.task.frames_usage import settle_frames

    task_id = submit(api, clip(tmp_path / "clip.mp4"))
    body = wait_state(api, task_id, {"succeeded", "failed"}, timeout=120)
    assert body["state"] == "succeeded", body
    with services.sessions.begin() as session:  # a segment's accounting lost after its checkpoint
        session.execute(
            update(Chunk)
            .where(Chunk.task_id == task_id, Chunk.index == 1)
            .values(frames_accounted=Chunk.frames_accounted - 8)
        )
        session.execute(
            update(Task).where(Task.id == task_id).values(frames_processed=Task.frames_processed - 8)
        )
    task_keys = keys.TaskKeys(task_id)
    assert settle_frames(services.ctx, task_keys, 1) == 8
    assert settle_frames(services.ctx, task_keys, 1) == 0  # once
    with services.sessions() as session:
        assert session.scalar(select(Task.frames_processed).where(Task.id == task_id)) == 96
