"""Network faults between a worker and its services, injected by TCP proxies mid-job: Redis
unreachable for longer than a lease, every connection to PostgreSQL, Redis and object
storage cut again and again, and latency added to the database and Redis. Each costs time,
never the job, never a chunk attempt, and the output is the uninterrupted run's bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.engine import make_url

from facefleet.records.db import Chunk
from tests.harness.net import wait_for
from tests.harness.proxy import TcpProxy
from tests.harness.stack import LEASE_TTL_S
from tests.harness.tasks import clip, expect_identical_output, submit, wait_state

DONE = {"succeeded", "failed", "cancelled"}


@contextmanager
def proxied_worker(fleet, settings, s3, latency_s: float = 0.0) -> Iterator[dict[str, TcpProxy]]:  # type: ignore[no-untyped-def]
    """The fleet's only worker, reaching PostgreSQL, Redis and S3 through proxies of its own."""
    db, rd = make_url(settings.database_url), make_url(settings.redis_url)
    proxies = {
        "postgres": TcpProxy(db.port or 5432, db.host or "127.0.0.1", latency_s=latency_s),
        "redis": TcpProxy(rd.port or 6379, rd.host or "127.0.0.1", latency_s=latency_s),
        "s3": TcpProxy(s3.port),
    }
    worker = fleet.only_worker(
        {
            "FACEFLEET_DATABASE_URL": db.set(
                host="127.0.0.1", port=proxies["postgres"].port
            ).render_as_string(hide_password=False),
            "FACEFLEET_REDIS_URL": rd.set(host="127.0.0.1", port=proxies["redis"].port).render_as_string(
                hide_password=False
            ),
            "FACEFLEET_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxies['s3'].port}",
        }
    )
    try:
        yield proxies
    finally:
        worker.stop()
        for proxy in proxies.values():
            proxy.down()


def _attempts(services, task_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        chunks = session.scalars(select(Chunk).where(Chunk.task_id == task_id).order_by(Chunk.index))
        return [c.attempts for c in chunks]


def _succeeds_identically(api, task_id, tmp_path, reference, timeout=180):  # type: ignore[no-untyped-def]
    body = wait_state(api, task_id, DONE, timeout=timeout)
    assert body["state"] == "succeeded", body
    expect_identical_output(api, task_id, reference, tmp_path)


def test_redis_unreachable_for_longer_than_a_lease_mid_job(
    api, fleet, services, settings, s3, tmp_path, reference
):
    """The worker loses Redis (its leases, checkpoints, cancel flags, dispatch lock) for
    20 s, several lease TTLs: it goes on with the segment it holds, and once Redis answers
    again the chunk resumes from what the bucket holds; no attempt is spent."""
    with proxied_worker(fleet, settings, s3) as proxies:
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        wait_for(lambda: services.state.checkpoints.saved(task_id) or None, 60, "a chunk in progress")
        with proxies["redis"].outage():
            time.sleep(max(20, 5 * LEASE_TTL_S))
        _succeeds_identically(api, task_id, tmp_path, reference)
        assert max(_attempts(services, task_id)) <= 2  # a lost lease may count once, as lost


def test_every_connection_cut_again_and_again_mid_job(
    api, fleet, services, settings, s3, tmp_path, reference
):
    """Every 1.5 s all the worker's open connections to PostgreSQL, Redis and S3 are dropped
    (a failover, a load balancer forgetting its flows): it reconnects each time and the job
    ends as an uninterrupted one, with one attempt per chunk."""
    with proxied_worker(fleet, settings, s3) as proxies:
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        wait_for(lambda: services.state.checkpoints.saved(task_id) or None, 60, "a chunk in progress")
        dropped = 0
        for _ in range(8):
            time.sleep(1.5)
            dropped += sum(proxy.cut() for proxy in proxies.values())
        assert dropped >= 8  # the cuts hit live connections
        _succeeds_identically(api, task_id, tmp_path, reference)
        assert _attempts(services, task_id) == [1, 1]


def test_latency_added_to_the_database_and_redis(api, fleet, services, settings, s3, tmp_path, reference):
    """A database and a Redis 50 ms away (each answer delayed): slower, the same bytes."""
    with proxied_worker(fleet, settings, s3, latency_s=0.05):
        task_id = submit(api, clip(tmp_path / "in.mp4"))
        _succeeds_identically(api, task_id, tmp_path, reference, timeout=240)
        assert _attempts(services, task_id) == [1, 1]
