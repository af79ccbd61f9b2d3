"""A broken worker must not collect everyone's retries: a worker whose scratch disk is full
gives its chunk back with no attempt spent, stops taking chunks and says why it is not
ready, while a healthy worker beside it does all the work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from facefleet.records.db import Chunk
from facefleet.task.chunk_outcomes import ChunkOutcome
from tests.harness.cli import REPO
from tests.harness.net import wait_for
from tests.harness.tasks import clip, submit, wait_state
from worker.breaker import Breaker

FULL_DISK = {"FACEFLEET_TEST_SCRATCH_FULL": "1", "FACEFLEET_WORKER_BREAKER_RECHECK_S": "2"}


def worker_check(env: dict[str, str], work_dir: Path) -> subprocess.CompletedProcess[str]:
    """`facefleet worker --check`, as the worker's own readiness probe runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--check"],
        env={**os.environ, **env, "FACEFLEET_WORK_DIR": str(work_dir)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def chunk_attempts(services, task_ids: list[str]) -> dict[tuple[str, int], int]:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        rows = session.execute(
            select(Chunk.task_id, Chunk.index, Chunk.attempts).where(Chunk.task_id.in_(task_ids))
        ).all()
    return {(task_id, index): attempts for task_id, index, attempts in rows}


def test_a_full_scratch_disk_costs_no_attempt_and_the_worker_says_why(api, fleet, env, services, tmp_path):
    for proc in fleet.live_workers():  # the broken worker alone first: it is sure to meet a chunk
        proc.stop()
    broken = fleet.start_worker(extra_env=FULL_DISK)
    healthy = None
    try:
        target = clip(tmp_path / "clip.mp4")
        first = submit(api, target)
        wait_for(lambda: "breaker open" in broken.text(), 60, "the broken worker's breaker to open")
        wait_for(lambda: "takes no chunks" in broken.text(), 30, "the broken worker to stop taking chunks")
        probe = worker_check(env, fleet.work_dir(broken))
        assert probe.returncode == 1, probe
        assert "breaker open" in probe.stderr and "scratch disk is full" in probe.stderr, probe.stderr

        healthy = fleet.start_worker()
        task_ids = [first, *(submit(api, target) for _ in range(3))]
        for task_id in task_ids:
            body = wait_state(api, task_id, {"succeeded", "failed"}, timeout=180)
            assert body["state"] == "succeeded", body
        attempts = chunk_attempts(services, task_ids)
        assert len(attempts) == 2 * len(task_ids)
        assert set(attempts.values()) == {1}, attempts  # the broken worker spent none
        assert "given back, this worker is at fault" in broken.text()
        still = worker_check(env, fleet.work_dir(broken))  # its disk is still full: still unready
        assert still.returncode == 1 and "scratch disk is full" in still.stderr, still
        assert "breaker stays open" in broken.text()  # it checked itself again, and found it broken
    finally:
        broken.stop()
        if healthy is not None:
            healthy.stop()


def test_work_failures_of_different_tasks_in_a_row_open_the_breaker():
    breaker = Breaker(failures=3, recheck_s=60)
    for _ in range(5):  # one bad input failing again and again says nothing of the host
        assert not breaker.record(ChunkOutcome.RETRY, "a")
    assert not breaker.record(ChunkOutcome.RETRY, "b")
    assert not breaker.reason
    assert breaker.record(ChunkOutcome.FAILED, "c")  # three different tasks in a row
    assert "3 different tasks" in breaker.reason
    assert not breaker.record(ChunkOutcome.RETRY, "d")  # opened once: given back once

    breaker.close_half_open()
    assert not breaker.reason
    assert breaker.record(ChunkOutcome.RETRY, "e")  # half open: one more failure reopens it


def test_a_success_ends_the_run_and_a_local_fault_opens_at_once():
    breaker = Breaker(failures=2, recheck_s=60)
    assert not breaker.record(ChunkOutcome.RETRY, "a")
    breaker.record(ChunkOutcome.SUCCEEDED, "b")
    assert not breaker.record(ChunkOutcome.RETRY, "c")
    assert not breaker.reason
    assert not breaker.record(ChunkOutcome.LOCAL_FAULT, "d", "the worker's scratch disk is full")
    assert breaker.reason == "the worker's scratch disk is full"
    assert not breaker.due_for_check()  # checked when it opened


def test_faults_of_the_host_are_told_from_failures_of_the_work():
    import errno

    from botocore.exceptions import ClientError, NoCredentialsError

    from facefleet.storage.s3 import _failure
    from facefleet.task.failures import infrastructure, local_fault
    from pipeline.errors import DeviceError, InvalidMediaError

    expired = ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "PutObject")
    for exc in (
        OSError(errno.ENOSPC, "No space left on device"),
        _failure("store", "tasks/abc/work/segments/00000/00000.mp4", expired),
        _failure("store", "tasks/abc/output.mp4", NoCredentialsError()),
        DeviceError("model inswapper_128 cannot be loaded by onnxruntime: CUDA failure"),
    ):
        assert local_fault(exc), exc
        assert infrastructure(exc) is None, exc  # neither waited out nor spent: given back
    slow = ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "PutObject")
    for exc in (InvalidMediaError("not a video"), _failure("store", "k", slow), RuntimeError("bug")):
        assert local_fault(exc) is None, exc
