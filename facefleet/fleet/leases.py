"""Leases: an exclusive, expiring claim on one piece of work (a chunk, a task's planning or
stitching), held in Redis with an owner token and a heartbeat, and fenced by that token in
the database (``chunks.lease_token``). Kept apart from the rest of ``facefleet.fleet.redis_state``
because its rules (when a holder must stop) are the fencing invariant of the design."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time

import redis

log = logging.getLogger(__name__)

# how long the per-task set of lease keys (read by clean-ups' busy check) is kept
LEASE_INDEX_TTL_S = 7 * 24 * 3600
# a lease counts as lost to its holder this far into its TTL without a renewal (one beat of
# the heartbeat, which renews every (1 - VALID_FRACTION) of the TTL, before Redis drops it)
VALID_FRACTION = 0.75

# compare-and-delete / compare-and-extend: only the lease's owner may release or renew it
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class Lease:
    """An exclusive, expiring claim on one key (SET NX PX with an owner token).

    ``acquire`` returns False when someone else holds it. While held, a heartbeat thread
    renews it every quarter of the TTL; when a renewal finds the lease gone or taken (Redis
    lost it, or the holder stalled past the TTL) ``lost`` becomes true and the holder must
    stop. ``release`` deletes it only if it is still ours.

    A holder cut off from Redis hears no answer at all, so the lease also counts as lost
    once it was not renewed for ``VALID_FRACTION`` of the TTL (monotonic clock, from when
    the last successful renewal was sent): a beat before Redis can expire it, so a write
    the holder checked ``lost`` for just before lands before anyone else may take over.

    With ``stall_after_s``, the heartbeat also watches the holder: if ``touch`` has not been
    called for that long (a hung decode or upload), it stops renewing, so the lease expires
    and the work goes to another worker, and ``lost`` tells the holder if it ever wakes.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_s: float,
        stall_after_s: float | None = None,
        index_key: str | None = None,
    ) -> None:
        self._redis, self.key, self.ttl_ms = client, key, max(1, int(ttl_s * 1000))
        self.index_key = index_key  # a set naming every lease of the task (``task_busy``)
        self.stall_after_s = stall_after_s
        self._touched = self._renewed = time.monotonic()
        self.token = secrets.token_hex(16)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """Whether the holder must stop (for good: a lost lease is never found again)."""
        if not self._lost.is_set() and time.monotonic() - self._renewed >= self.valid_s:
            self._lost.set()
        return self._lost.is_set()

    @property
    def valid_s(self) -> float:
        """How long after a successful renewal the holder may still count on the lease."""
        return self.ttl_ms * VALID_FRACTION / 1000

    def acquire(self, heartbeat: bool = True) -> bool:
        if self.index_key is not None:  # named before it is taken: a busy check never misses it
            pipe = self._redis.pipeline()
            pipe.sadd(self.index_key, self.key)
            pipe.expire(self.index_key, LEASE_INDEX_TTL_S)
            pipe.execute()
        sent = time.monotonic()
        if not self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._renewed = sent
        self.touch()
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name=f"lease {self.key}", daemon=True)
            self._thread.start()
        return True

    def touch(self) -> None:
        """The holder made progress (called often: it only stores a time)."""
        self._touched = time.monotonic()

    def renew(self) -> bool:
        sent = time.monotonic()
        renewed = bool(self._redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))
        if renewed:
            self._renewed = sent
        return renewed

    def _beat(self) -> None:
        interval = self.ttl_ms / 1000 * (1 - VALID_FRACTION)
        while not self._stop.wait(interval) and not self.lost:
            stalled_s = time.monotonic() - self._touched
            if self.stall_after_s is not None and stalled_s > self.stall_after_s:
                log.warning("no progress under %s for %.0f s: letting the lease expire", self.key, stalled_s)
                self._lost.set()
                return
            try:
                if not self.renew():
                    self._lost.set()
                    return
            except redis.RedisError as exc:  # a blip: the next beat tries again, ``lost`` ends the wait
                log.warning("lease %s not renewed (%s)", self.key, type(exc).__name__)
        if self.lost:
            log.warning("lease %s not renewed for %.1f s: lost to its holder", self.key, self.valid_s)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):  # else it expires on its own
            self._redis.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
