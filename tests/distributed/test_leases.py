"""Leases held through long steps and lost for good: an output upload slower than the stall
limit keeps its stitch's lease; a worker cut from Redis for longer than its lease stops and
writes nothing more while another finishes its chunk; the reaper's take-over fences the old
holder out of the chunk's row; and a writer never takes over another's multipart upload."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from facefleet.config.options import JobOptions
from facefleet.records import keys
from facefleet.records.db import Chunk, Task
from facefleet.records.states import ChunkState, TaskState
from facefleet.storage.s3 import S3Storage
from facefleet.task.chunk_outcomes import ChunkOutcome, finish, handed_back, record_failure
from facefleet.task.jobs import create_task, fail_task, requeue_expired
from tests.harness.net import wait_for
from tests.harness.proxy import TapProxy, TcpProxy
from tests.harness.services import S3Server
from tests.harness.stack import LEASE_TTL_S
from tests.harness.tasks import clip, expect_identical_output, submit, wait_state

DONE = {"succeeded", "failed", "cancelled"}
STALL_S = 3.0  # the stall limit of the worker whose output upload is slowed
UPLOAD_S = 10.0  # how long that upload takes: over 3x the stall limit, over stall + TTL
CUT_PAUSE_S = 1.0  # per segment, for the worker cut from Redis: its chunk outlasts its lease


def _versions(s3: S3Server, key: str) -> list[dict[str, Any]]:
    listed = s3.client.list_object_versions(Bucket=s3.bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


@contextmanager
def _stopped_workers(fleet) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """No worker of the usual fleet runs in the block (the fleet is restored after the test)."""
    for proc in fleet.live_workers():
        proc.stop()
    try:
        yield
    finally:
        for proc in fleet.live_workers():
            proc.stop()


def test_an_output_upload_slower_than_the_stall_limit_keeps_its_lease(api, fleet, s3, tmp_path, reference):
    """The only worker reaches the bucket through a proxy that passes the output's body at
    a tenth of its size a second: the upload lasts over three stall limits, the stitch keeps
    its lease (no second stitcher), and the task succeeds with one output, the reference's."""
    proxy = TapProxy(s3.port, slow_marker=b"/output.mp4", slow_bytes_per_s=len(reference) / UPLOAD_S)
    env = {
        "FACEFLEET_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
        "FACEFLEET_CHUNK_STALL_S": str(STALL_S),
    }
    with _stopped_workers(fleet):
        worker = fleet.start_worker(extra_env=env)
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        body = wait_state(api, task_id, DONE, timeout=180)
    proxy.down()
    assert body["state"] == "succeeded", body
    output = keys.TaskKeys(task_id).output
    uploads = [r for r in proxy.requests if r.method == "PUT" and output in r.path]
    assert len(uploads) == 1, uploads  # one stitcher, one upload
    assert uploads[0].last_byte - uploads[0].first_byte > STALL_S * 2  # it was slow indeed
    assert len(_versions(s3, output)) == 1
    assert "lost the lease" not in worker.text() and "letting the lease expire" not in worker.text()
    expect_identical_output(api, task_id, reference, tmp_path)


class _LeaseWatch:
    """When a lease held under ``token`` expires in Redis, as Redis tells it (the holder can
    no longer renew it, so its last time to live is its end)."""

    def __init__(self, client: Any, key: str, token: str) -> None:
        self.expires_at = float("inf")
        self._client, self._key, self._token = client, key, token
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            pipe = self._client.pipeline()
            pipe.get(self._key)
            pipe.pttl(self._key)
            now = time.monotonic()
            value, pttl = pipe.execute()
            if value is None or value.decode() != self._token:
                return
            self.expires_at = now + pttl / 1000
            time.sleep(0.05)

    def wait(self, timeout: float) -> float:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the cut-off holder's lease never expired"
        return self.expires_at


def _running_chunk(services, task_id: str) -> Chunk | None:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        return session.scalar(
            select(Chunk).where(Chunk.task_id == task_id, Chunk.state == ChunkState.RUNNING)
        )


def _chunk(services, task_id: str, index: int) -> Chunk:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        found = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == index))
        assert found is not None
        return found


def test_a_worker_cut_from_redis_past_its_lease_stops_writing(
    api, fleet, services, settings, s3, tmp_path, reference
):
    """Worker A loses Redis mid-chunk and is kept from it for at least 3 TTLs and until
    worker B has taken the chunk over. A stops (its lease counts as lost once it could not
    renew it); B finishes the chunk; the output is the reference's; and A's write log (a
    proxy in front of its bucket) shows no byte of a segment sent after its lease expired."""
    redis_url = make_url(settings.redis_url)
    redis_proxy = TcpProxy(redis_url.port or 6379, redis_url.host or "127.0.0.1")
    s3_proxy = TapProxy(s3.port)
    env = {
        "FACEFLEET_REDIS_URL": redis_url.set(host="127.0.0.1", port=redis_proxy.port).render_as_string(
            hide_password=False
        ),
        "FACEFLEET_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_proxy.port}",
    }
    with _stopped_workers(fleet):
        cut = fleet.start_worker(pause=CUT_PAUSE_S, extra_env=env)
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        chunk = wait_for(lambda: _running_chunk(services, task_id), 60, "worker A running a chunk")
        saved = lambda: services.state.checkpoints.saved(task_id).get(chunk.index)  # noqa: E731
        wait_for(saved, 60, "a segment of A's chunk stored")
        redis_proxy.down()
        cut_at = time.monotonic()
        lease_key = services.state.keys.lease(task_id, chunk.index)
        token = services.state.redis.get(lease_key)
        assert token is not None, "A's lease was gone before the cut"
        watch = _LeaseWatch(_raw(settings), lease_key, token)
        fleet.start_worker(wait=False)
        expired_at = watch.wait(timeout=30)
        wait_for(lambda: _chunk(services, task_id, chunk.index).worker != chunk.worker, 120, "B taking it")
        time.sleep(max(0.0, cut_at + 3 * LEASE_TTL_S - time.monotonic()))
        redis_proxy.up()
        body = wait_state(api, task_id, DONE, timeout=180)
        assert body["state"] == "succeeded", body
    redis_proxy.down()
    s3_proxy.down()
    segments = f"/{keys.TaskKeys(task_id).segment_prefix(chunk.index)}"
    writes = [r for r in s3_proxy.requests if r.method == "PUT" and segments in r.path]
    assert writes, "A stored no segment at all: the write log sees nothing"
    late = [r for r in writes if r.last_byte >= expired_at]
    assert not late, (late, expired_at)
    assert "lost to its holder" in cut.text()
    finished = _chunk(services, task_id, chunk.index)
    assert finished.state == ChunkState.SUCCEEDED and finished.worker != chunk.worker
    expect_identical_output(api, task_id, reference, tmp_path)


def _raw(settings) -> Any:  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(settings.redis_url)


@pytest.fixture
def made_up(services) -> Iterator[list[str]]:
    """Tasks made up from rows alone, failed at the end (the reaper would else act on them)."""
    made: list[str] = []
    yield made
    for task_id in made:
        fail_task(services.ctx, task_id, "made up by a test")


def test_the_reapers_take_over_fences_the_old_holder_out(services, made_up):
    """A chunk started under token "old" is taken over by the reaper: the old holder's
    finish, failure and hand-back change nothing; the new holder's finish counts."""
    task = create_task(services.ctx, target_key="unused", source_keys=[], options=JobOptions())
    made_up.append(task.id)
    with services.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task.id).values(state=TaskState.RUNNING))
        session.add(
            Chunk(
                task_id=task.id,
                index=0,
                frame_start=0,
                frame_end=1,
                segments_total=1,
                state=ChunkState.RUNNING,
                worker=services.ctx.worker_name,
                lease_token="old",
                attempts=1,
            )
        )
    assert requeue_expired(services.ctx, lambda t, _i: t != task.id) == [(task.id, 0)]
    with services.sessions.begin() as session:  # the new holder's start
        session.execute(
            update(Chunk)
            .where(Chunk.task_id == task.id)
            .values(state=ChunkState.RUNNING, lease_token="new", worker=services.ctx.worker_name)
        )
    assert finish(services.ctx, task.id, 0, "old") == ChunkOutcome.SKIPPED
    assert record_failure(services.ctx, task.id, 0, "late", None, "old") == ChunkOutcome.SKIPPED
    assert handed_back(services.ctx, task.id, 0, "old") != ChunkOutcome.HANDED_BACK
    assert _chunk(services, task.id, 0).state == ChunkState.RUNNING
    assert finish(services.ctx, task.id, 0, "new") == ChunkOutcome.STITCH


def test_a_writer_never_takes_over_another_writers_multipart_upload(s3, tmp_path):
    """Writer A's second part is held back in a proxy while writer B stores the same key:
    B must not complete A's upload (A's part would then fail), so both succeed, and the
    object is the file's bytes with no upload left unfinished."""
    proxy = TapProxy(s3.port, hold_marker=b"partNumber=2")

    def writer(endpoint: str, name: str) -> S3Storage:
        storage = S3Storage(
            s3.bucket, cache_dir=tmp_path / name, endpoint_url=endpoint, multipart_threshold=5 * 1024**2
        )
        storage._transfer.max_request_concurrency = 1
        return storage

    first, second = writer(f"http://127.0.0.1:{proxy.port}", "a"), writer(s3.endpoint, "b")
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(11).bytes(first._transfer.multipart_chunksize + 4321))
    key = "outputs/two-writers.mp4"
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            first.put_file(key, path)
        except Exception as exc:
            failed.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert proxy.held.wait(60), "writer A never sent its second part"
        second.put_file(key, path)
    finally:
        proxy.release()
        thread.join(120)
        proxy.down()
    assert not failed, failed
    client = s3.client
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == Path(path).read_bytes()
    assert not client.list_multipart_uploads(Bucket=s3.bucket, Prefix=key).get("Uploads")
