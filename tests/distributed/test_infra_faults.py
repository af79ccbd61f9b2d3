"""Infrastructure faults cost time, never a job: object storage down for a minute mid-job,
the same chunk's worker killed again and again; and a chunk that kills its worker every
time still ends, with a reason, after its lost-worker budget, while other work goes on."""

from __future__ import annotations

import time

from sqlalchemy import select

from facefleet.records.db import Chunk, Task, utcnow
from tests.harness.net import wait_for
from tests.harness.proxy import TcpProxy
from tests.harness.stack import LOST_WORKER_BUDGET, POISON_NAME, WORKERS
from tests.harness.tasks import (
    FRAMES,
    clip,
    expect_identical_output,
    frame_indices,
    submit,
    wait_state,
)

DONE = {"succeeded", "failed", "cancelled"}
SLOW_SEGMENT_PAUSE_S = 2.0


def _chunks(services, task_id: str) -> dict[int, Chunk]:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        return {c.index: c for c in session.scalars(select(Chunk).where(Chunk.task_id == task_id))}


def test_object_storage_down_for_a_minute_mid_job(api, services, s3, tmp_path, reference):
    running = submit(api, clip(tmp_path / "in.mp4"))
    wait_for(lambda: services.state.checkpoints.saved(running) or None, 60, "a chunk in progress")
    just_before = submit(api, clip(tmp_path / "in.mp4"))  # accepted, not yet planned
    with s3.outage():
        time.sleep(60)
    for task_id in (running, just_before):
        body = wait_state(api, task_id, DONE, timeout=180)
        assert body["state"] == "succeeded", body
        expect_identical_output(api, task_id, reference, tmp_path)
    attempts = [c.attempts for c in _chunks(services, running).values()]
    assert max(attempts) <= 2, attempts  # an outage spends no attempts (2: one lost lease at most)


def test_the_same_chunks_worker_killed_five_times(api, fleet, services, tmp_path, reference):
    # Slow workers: each run of the chunk stores a segment or two before its kill, so the
    # chunk (6 segments) outlasts the five kills however loaded the machine is.
    for proc in fleet.live_workers():
        proc.stop()
    for proc in [fleet.start_worker(pause=SLOW_SEGMENT_PAUSE_S, wait=False) for _ in range(WORKERS)]:
        proc.wait_for_log("ready.")
    try:
        _kill_the_same_chunks_worker_five_times(api, fleet, services, tmp_path, reference)
    finally:  # the usual workers are started again after the test
        for proc in fleet.live_workers():
            proc.stop()


def _kill_the_same_chunks_worker_five_times(api, fleet, services, tmp_path, reference):  # type: ignore[no-untyped-def]
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    victim_chunk: int | None = None
    killed: set[int] = set()
    while len(killed) < 5:

        def holder(victim_chunk: int | None = victim_chunk):  # type: ignore[no-untyped-def]
            """The victim chunk, running on a live worker not killed yet."""
            for chunk in _chunks(services, task_id).values():
                if chunk.state.value != "running" or not chunk.worker:
                    continue
                pid = int(chunk.worker.rsplit(":", 1)[1])
                live = {w.pid for w in fleet.live_workers()}
                if pid in live and pid not in killed and victim_chunk in (None, chunk.index):
                    return chunk.index, pid
            return None

        victim_chunk, pid = wait_for(holder, 60, "the chunk running on a live worker")
        fleet.worker_by_pid(pid).kill()
        killed.add(pid)
        fleet.start_worker(pause=SLOW_SEGMENT_PAUSE_S, wait=False)  # as an orchestrator would
    body = wait_state(api, task_id, DONE, timeout=180)
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)
    assert frame_indices(out) == list(range(FRAMES))
    chunk = _chunks(services, task_id)[victim_chunk]
    assert chunk.lost >= 5 and chunk.attempts == 1, (chunk.lost, chunk.attempts)  # kills spend no attempt


def test_a_chunk_that_kills_its_worker_every_time_ends_with_a_reason(api, fleet, services, tmp_path):
    poison = submit(api, clip(tmp_path / POISON_NAME))
    healthy = submit(api, clip(tmp_path / "in.mp4"))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        fleet.ensure_workers(deaths_expected=True)  # as an orchestrator restarts killed pods
        body = wait_state(api, poison, DONE | {"running", "planning", "queued"}, timeout=10)
        if body["state"] in DONE:
            break
        time.sleep(0.5)
    assert body["state"] == "failed", body
    assert f"lost {LOST_WORKER_BUDGET} times" in body["error"], body["error"]
    assert wait_state(api, healthy, DONE, timeout=120)["state"] == "succeeded"
    fleet.ensure_workers()


def test_database_down_for_half_a_minute_mid_job(api, fleet, services, settings, tmp_path, reference):
    """The worker reaches PostgreSQL through a proxy that is cut for 30 s mid-chunk: it holds
    its message and lease and waits, no attempt and no message is spent, and the job ends no
    later than an uninterrupted one plus the outage plus 30 s."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    worker = fleet.only_worker({"FACEFLEET_DATABASE_URL": through_proxy})
    try:
        started = time.monotonic()
        plain = submit(api, clip(tmp_path / "in.mp4"))
        assert wait_state(api, plain, DONE)["state"] == "succeeded"
        uninterrupted = time.monotonic() - started

        started = time.monotonic()
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        wait_for(lambda: services.state.checkpoints.saved(task_id) or None, 60, "a chunk in progress")
        with proxy.outage():
            time.sleep(30)
        outage_over = utcnow()
        body = wait_state(api, task_id, DONE, timeout=180)
        elapsed = time.monotonic() - started
        assert body["state"] == "succeeded", body
        assert elapsed <= uninterrupted + 30 + 30, (elapsed, uninterrupted)
        chunks = _chunks(services, task_id).values()
        assert [c.attempts for c in chunks] == [1, 1], [(c.attempts, c.lost) for c in chunks]
        assert [c.lost for c in chunks] == [0, 0]  # nothing waited for the reaper
        with services.sessions() as session:  # the work went on across the outage, not before it
            assert session.get(Task, task_id).finished_at > outage_over
        expect_identical_output(api, task_id, reference, tmp_path)
    finally:
        worker.stop()
        proxy.down()


def test_half_a_second_added_to_every_object_storage_answer(api, fleet, s3, tmp_path, reference):
    port = s3.port
    slow = TcpProxy(port, latency_s=0.5)
    worker = fleet.only_worker({"FACEFLEET_S3_ENDPOINT_URL": f"http://127.0.0.1:{slow.port}"})
    try:
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        body = wait_state(api, task_id, DONE, timeout=240)
        assert body["state"] == "succeeded", body
        expect_identical_output(api, task_id, reference, tmp_path)
    finally:
        worker.stop()
        slow.down()
