"""The adapters on their own: leases, checkpoints, the S3 storage and its cache, backoff."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from facefleet.config.policy import retry_delay
from facefleet.fleet.redis_state import RedisState
from facefleet.storage.base import StorageError, UploadTooLarge
from facefleet.storage.s3 import S3Storage


@pytest.fixture
def state(redis_url):
    import uuid

    found = RedisState.from_url(redis_url, f"unit-{uuid.uuid4().hex[:8]}", lease_ttl_s=1)
    yield found
    for key in found.redis.scan_iter(f"{found.keys.namespace}:*"):
        found.redis.delete(key)


@pytest.fixture
def storage(s3, tmp_path):
    return S3Storage(
        s3.bucket,
        cache_dir=tmp_path / "cache",
        endpoint_url=s3.endpoint,
        multipart_threshold=5 * 1024**2,
    )


def test_only_one_of_many_takes_a_lease(state):
    leases = [state.chunk_lease("t", 0) for _ in range(8)]
    barrier = threading.Barrier(len(leases))
    won = []

    def take(lease):
        barrier.wait()
        if lease.acquire(heartbeat=False):
            won.append(lease)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    loser = next(lease for lease in leases if lease is not won[0])
    loser.release()  # compare-and-delete: not the owner, nothing happens
    assert state.is_leased("t", 0)
    won[0].release()
    assert not state.is_leased("t", 0)


def test_heartbeat_keeps_a_lease_and_notices_its_loss(state):
    lease = state.chunk_lease("t", 1)
    assert lease.acquire()
    time.sleep(2.5)  # longer than the TTL: the heartbeat renewed it
    assert state.is_leased("t", 1) and not lease.lost
    state.redis.delete(state.keys.lease("t", 1))
    time.sleep(1)
    assert lease.lost
    lease.release()


def test_a_holder_that_stops_making_progress_loses_its_lease(state):
    lease = state.chunk_lease("t", 2, stall_after_s=2.0)
    assert lease.acquire()
    for _ in range(6):  # progress: renewed past the TTL
        time.sleep(0.5)
        lease.touch()
    assert state.is_leased("t", 2) and not lease.lost
    time.sleep(2.0 + 2 * 1.0 + 0.5)  # stalled: no more renewals, and the TTL runs out
    assert lease.lost and not state.is_leased("t", 2)
    lease.release()


def test_checkpoints_and_progress(state):
    cp = state.checkpoints
    assert cp.load("t", 0) is None  # unknown: the core falls back to the bucket
    cp.save("t", 0, 3, 24)
    cp.report_progress("t", 1, 5)
    assert cp.load("t", 0) == 3
    assert cp.progress("t") == {0: 24, 1: 5}
    cp.clear("t")
    assert cp.load("t", 0) is None and cp.progress("t") == {}


def test_oversized_stream_leaves_nothing(storage, s3):
    for size in (2000, 12 * 1024**2):  # a single PUT, and a multipart upload
        with pytest.raises(UploadTooLarge):
            storage.put_stream(
                f"unit/too-big-{size}",
                io.BytesIO(b"x" * size),
                max_bytes=1000 if size == 2000 else 6 * 1024**2,
            )
        assert not storage.exists(f"unit/too-big-{size}")
    assert not s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


def test_local_path_downloads_once_per_version(storage):
    storage.put_stream("unit/a", io.BytesIO(b"first"))
    first = storage.local_path("unit/a")
    assert storage.local_path("unit/a") == first and storage.cache.downloads == 1
    storage.put_stream("unit/a", io.BytesIO(b"second"))
    assert storage.local_path("unit/a").read_bytes() == b"second" and storage.cache.downloads == 2
    with pytest.raises(StorageError, match="no object"):
        storage.local_path("unit/missing")
    storage.delete_prefix("unit/")
    assert storage.list("unit/") == []


def test_cache_is_bounded(storage, tmp_path):
    small = S3Storage(storage.bucket, cache_dir=tmp_path / "small", cache_max_bytes=2500, client=storage._s3)
    for i in range(5):
        small.put_stream(f"unit/c{i}", io.BytesIO(bytes(1000)))
        small.local_path(f"unit/c{i}")
        time.sleep(0.01)
    cached = list((tmp_path / "small").iterdir())  # downloads in progress count too
    assert not [p for p in cached if p.name.startswith(".part-")], cached  # none left behind
    assert sum(p.stat().st_size for p in cached) <= 2500
    small.delete_prefix("unit/")


def test_cache_never_evicts_a_file_a_step_holds(storage, tmp_path):
    small = S3Storage(storage.bucket, cache_dir=tmp_path / "small", cache_max_bytes=2500, client=storage._s3)
    for i in range(4):
        small.put_stream(f"unit/h{i}", io.BytesIO(bytes([i]) * 1000))
    with small.hold("unit/h0") as held:
        for i in range(1, 4):  # each download would push the oldest file out
            small.local_path(f"unit/h{i}")
            time.sleep(0.01)
        assert held.read_bytes() == bytes([0]) * 1000
    small.local_path("unit/h3")
    small.put_stream("unit/h4", io.BytesIO(bytes(1000)))
    small.local_path("unit/h4")  # released: now it may go
    assert not held.exists()
    small.delete_prefix("unit/")


def test_retry_delay_is_exponential_and_capped():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(30) == 300.0
    with pytest.raises(ValueError):
        retry_delay(0)


def test_download_links_are_signed_for_the_public_endpoint(storage):
    public = S3Storage(
        storage.bucket,
        cache_dir=storage.cache.root,
        endpoint_url=storage._s3.meta.endpoint_url,
        public_endpoint_url="https://files.example.com",
    )
    url = public.presign("tasks/x/output.mp4", 600)
    assert url is not None and url.startswith("https://files.example.com/")
    assert "Expires=" in url or "X-Amz-Expires=600" in url


def test_an_interrupted_multipart_upload_resumes_with_the_parts_it_stored(s3, tmp_path):
    """The bucket drops away after part 2 of 4; once it is back, the same call sends only
    the missing parts, and the object is the file's bytes."""
    from tests.harness.net import wait_for
    from tests.harness.proxy import TcpProxy

    port = s3.port
    proxy = TcpProxy(port)
    storage = S3Storage(
        s3.bucket,
        cache_dir=tmp_path / "cache",
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        multipart_threshold=5 * 1024**2,
    )
    storage._transfer.max_request_concurrency = 1  # parts in order, so the cut falls between them
    part = storage._transfer.multipart_chunksize
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(7).bytes(3 * part + 12345))
    key = "outputs/resume-test.mp4"
    client = s3.client

    def parts_stored() -> int:
        uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=key).get("Uploads", [])
        if not uploads:
            return 0
        listed = client.list_parts(Bucket=s3.bucket, Key=key, UploadId=uploads[0]["UploadId"])
        return len(listed.get("Parts", []))

    failed: list[BaseException] = []

    def upload() -> None:
        try:
            storage.put_file(key, path)
        except StorageError as exc:
            failed.append(exc)

    first = threading.Thread(target=upload)
    first.start()
    wait_for(lambda: parts_stored() >= 2 or None, 60, "two parts stored", interval=0.01)
    proxy.down()
    first.join(120)
    assert failed and failed[0].transient, failed  # an outage: the caller tries again later
    stored = parts_stored()
    assert 2 <= stored < 4
    proxy.up()
    before = proxy.bytes_sent
    storage.put_file(key, path)
    resent = proxy.bytes_sent - before
    assert resent < (3 - stored) * part + 12345 + 100_000, (resent, stored)  # only the missing parts
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == path.read_bytes()
    assert not client.list_multipart_uploads(Bucket=s3.bucket, Prefix=key).get("Uploads")
    proxy.down()


def test_deleting_a_prefix_aborts_its_unfinished_uploads(storage, s3):
    client = s3.client
    client.create_multipart_upload(Bucket=s3.bucket, Key="tasks/t9/output.mp4")
    storage.delete_prefix("tasks/t9/")
    assert not client.list_multipart_uploads(Bucket=s3.bucket, Prefix="tasks/t9/").get("Uploads")
