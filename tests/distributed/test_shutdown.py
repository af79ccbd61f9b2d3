"""Graceful shutdown: SIGTERM (a rollout, a scale-down) makes a worker hand its chunk back at
the next segment boundary, so the chunk moves on at once instead of after the lease TTL."""

from __future__ import annotations

import os
import signal
import time

from sqlalchemy import select

from facefleet.records.db import Chunk
from tests.harness.net import wait_for
from tests.harness.tasks import (
    FRAMES,
    JOB,
    clip,
    expect_identical_output,
    frame_indices,
    segment_writes,
    submit,
    wait_state,
)

ONE_CHUNK = {**JOB, "chunk_frames": FRAMES}  # 12 segments; the other worker is free to take it
SEGMENTS = FRAMES // JOB["segment_frames"]
HANDOVER_S = 5


def _chunk(services, task_id: str) -> Chunk:
    with services.sessions() as session:
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == 0))
        assert chunk is not None
        return chunk


def test_sigterm_mid_chunk_hands_the_chunk_to_another_worker_at_once(
    api, fleet, services, s3, tmp_path, reference
):
    task_id = submit(api, clip(tmp_path / "in.mp4"), ONE_CHUNK)
    wait_for(
        lambda: 2 <= services.state.checkpoints.saved(task_id).get(0, 0) < SEGMENTS - 4,
        60,
        "the chunk in progress",
    )
    holder = _chunk(services, task_id).worker
    victim = fleet.worker_by_pid(int(holder.rsplit(":", 1)[1]))
    stored_at_signal = services.state.checkpoints.saved(task_id).get(0, 0)
    os.kill(victim.pid, signal.SIGTERM)  # to the main process only, as Kubernetes sends it
    signalled = time.monotonic()

    def taken_over() -> bool:
        chunk = _chunk(services, task_id)
        return chunk.state.value == "running" and chunk.worker != holder

    wait_for(taken_over, HANDOVER_S, "the chunk to continue on the other worker")
    handover_s = time.monotonic() - signalled
    assert victim.popen.wait(30) == 0, victim.text()[-2000:]  # it stopped, cleanly
    assert "handed-back" in victim.text()

    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    out = expect_identical_output(api, task_id, reference, tmp_path)  # byte-identical to an uninterrupted run
    assert frame_indices(out) == list(range(FRAMES))
    writes = segment_writes(s3, task_id)
    assert len(writes) == SEGMENTS and set(writes.values()) == {1}, writes  # nothing redone
    chunk = _chunk(services, task_id)
    assert chunk.attempts == 1 and chunk.lost == 0, (chunk.attempts, chunk.lost)  # no failure, no loss
    print(f"handed over in {handover_s:.2f} s, signalled after {stored_at_signal} of {SEGMENTS} segments")


def test_sigterm_reaches_the_chunk_in_a_prefork_child(api, fleet, services, s3, tmp_path, reference):
    """Kubernetes signals the worker's main process only; its pool's child, which holds the
    chunk, learns of it through the worker's shared stopping flag."""
    for worker in fleet.live_workers():
        worker.stop()
    # a slow victim (1 s a segment): its chunk must outlast the start of the replacement
    # below, which takes seconds on a loaded machine (with 0.3 s it once ended first)
    victim = fleet.start_worker(pool="prefork", pause=1.0)
    task_id = submit(api, clip(tmp_path / "in.mp4"), ONE_CHUNK)
    wait_for(lambda: services.state.checkpoints.saved(task_id).get(0, 0) >= 1, 60, "the chunk to start")
    holder = _chunk(services, task_id).worker
    assert int(holder.rsplit(":", 1)[1]) != victim.pid  # a child of the pool holds it
    fleet.start_worker()  # the replacement a rollout starts first
    assert services.state.checkpoints.saved(task_id).get(0, 0) < SEGMENTS - 2, "the chunk ended too soon"
    os.kill(victim.pid, signal.SIGTERM)
    signalled = time.monotonic()
    wait_for(
        lambda: _chunk(services, task_id).worker != holder, HANDOVER_S, "the chunk to continue elsewhere"
    )
    print(f"handed over from a prefork child in {time.monotonic() - signalled:.2f} s")
    assert victim.popen.wait(30) == 0, victim.text()[-2000:]

    assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"
    expect_identical_output(api, task_id, reference, tmp_path)
    assert set(segment_writes(s3, task_id).values()) == {1}
