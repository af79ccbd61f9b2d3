"""Who may be receiving a submission now (its body, its URL fetches, its probe): at most
``per_process`` requests of one API process, so that its other threads always answer
health and status reads; and at most ``per_tenant`` of one tenant across every API process
(a sorted set in Redis whose entries expire on their own, should a process die holding
one). Past either: 429 with Retry-After, before a byte of the body is read."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import redis

from api.problems import Problem

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
# trim the expired entries, count, add: one atomic step
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class SubmitSlots:
    def __init__(self, per_process: int, per_tenant: int) -> None:
        self.per_process, self.per_tenant = per_process, per_tenant
        self._process = threading.BoundedSemaphore(per_process)

    @contextlib.contextmanager
    def process(self) -> Iterator[None]:
        if not self._process.acquire(blocking=False):
            raise Problem(
                429,
                f"this API process is receiving {self.per_process} submissions, its most; submit again shortly",
                "busy",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                limit=self.per_process,
            )
        try:
            yield
        finally:
            self._process.release()

    @contextlib.contextmanager
    def tenant(self, client: redis.Redis, namespace: str, tenant: str, hold_s: float) -> Iterator[None]:
        """One of the tenant's slots for at most ``hold_s`` (then it lapses by itself)."""
        key, member = f"{namespace}:uploads:{tenant}", uuid.uuid4().hex
        now = time.time()
        try:
            taken = client.eval(
                _TAKE, 1, key, now, self.per_tenant, now + hold_s, member, int(hold_s * 1000) + 1000
            )
        except redis.RedisError as exc:  # the per-process limit still holds: not worth an outage
            log.warning("uploads of tenant %s not counted (%s)", tenant, type(exc).__name__)
            taken = None
        if taken == 0:
            raise Problem(
                429,
                f"{self.per_tenant} submissions of this tenant are being received, its most; "
                "submit again once one has finished",
                "too-many-uploads",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                limit=self.per_tenant,
            )
        try:
            yield
        finally:
            if taken:
                with contextlib.suppress(redis.RedisError):
                    client.zrem(key, member)
