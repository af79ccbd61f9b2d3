"""What the distributed mode keeps in Redis: checkpoints, live progress, chunk leases and
cancel flags. Every key starts with a namespace, so that deployments (and tests) can share
one Redis without seeing each other.

Redis is for speed, not truth: a lost checkpoint makes ``load`` answer None and the job core
recovers the resume point from the segments listed in the bucket; a lost lease is noticed by
its holder at the next heartbeat (it stops) and by the reaper (it re-enqueues the chunk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from facefleet.fleet.leases import Lease

log = logging.getLogger(__name__)

CANCEL_FLAG_TTL_S = 7 * 24 * 3600
PROGRESS_TTL_S = 7 * 24 * 3600
# throughput is measured in buckets of 10 s, over the last 5 minutes
METER_BUCKET_S = 10
METER_WINDOW_S = 300


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, health_check_interval=30)


@dataclass(frozen=True)
class KeySpace:
    namespace: str = "facefleet"

    def checkpoints(self, task_id: str) -> str:
        return f"{self.namespace}:checkpoint:{task_id}"

    def progress(self, task_id: str) -> str:
        return f"{self.namespace}:progress:{task_id}"

    def lease(self, task_id: str, part: int | str) -> str:
        """A chunk's lease (``part`` is its index), or the planner's or stitcher's."""
        return f"{self.namespace}:lease:{task_id}:{part}"

    def leases(self, task_id: str) -> str:
        """The set of the task's lease keys, each added before it is taken."""
        return f"{self.namespace}:leases:{task_id}"

    def marker(self, name: str) -> str:
        return f"{self.namespace}:marker:{name}"

    def cancel(self, task_id: str) -> str:
        return f"{self.namespace}:cancel:{task_id}"


class RedisCheckpoints:
    """The Checkpoints protocol in two hashes per task: ``checkpoint`` (chunk -> "segments
    frames", written after the segment's upload) and ``progress`` (chunk -> live frames).

    Redis is not the truth here, so an unreachable Redis costs speed, never a chunk
    attempt: a checkpoint that cannot be read is recovered from the bucket's listing, one
    that cannot be written means a resume redoes a few stored segments (the same bytes),
    and live progress is skipped until Redis answers again.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self._redis, self._keys = client, keys

    def load(self, task_id: str, chunk_index: int) -> int | None:
        try:
            value = self._redis.hget(self._keys.checkpoints(task_id), str(chunk_index))
        except redis.RedisError as exc:
            log.warning(
                "checkpoint of chunk %d of task %s unreadable (%s): using the bucket",
                chunk_index,
                task_id,
                exc,
            )
            return None
        return int(str(value).split()[0]) if value is not None else None

    def save(self, task_id: str, chunk_index: int, segments_done: int, frames_done: int) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(self._keys.checkpoints(task_id), str(chunk_index), f"{segments_done} {frames_done}")
        pipe.expire(self._keys.checkpoints(task_id), PROGRESS_TTL_S)
        pipe.hset(self._keys.progress(task_id), str(chunk_index), str(frames_done))
        pipe.expire(self._keys.progress(task_id), PROGRESS_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("checkpoint of chunk %d of task %s not saved (%s)", chunk_index, task_id, exc)

    def report_progress(self, task_id: str, chunk_index: int, frames_done: int) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(self._keys.progress(task_id), str(chunk_index), str(frames_done))
        pipe.expire(self._keys.progress(task_id), PROGRESS_TTL_S)
        with contextlib.suppress(redis.RedisError):
            pipe.execute()

    def progress(self, task_id: str) -> dict[int, int]:
        try:
            raw = self._redis.hgetall(self._keys.progress(task_id))
        except redis.RedisError:
            return {}  # the database's per-chunk counts still answer
        return {int(k): int(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def saved(self, task_id: str) -> dict[int, int]:
        """Segments stored per chunk, as far as the checkpoints know."""
        raw = self._redis.hgetall(self._keys.checkpoints(task_id))
        return {int(k): int(str(v).split()[0]) for k, v in raw.items()}  # type: ignore[union-attr]

    def clear(self, task_id: str) -> None:
        try:
            self._redis.delete(self._keys.checkpoints(task_id), self._keys.progress(task_id))
        except redis.RedisError as exc:  # they expire on their own
            log.warning("checkpoints of task %s not cleared (%s)", task_id, exc)


class CancelFlags:
    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self._redis, self._keys = client, keys

    def set(self, task_id: str) -> None:
        self._redis.set(self._keys.cancel(task_id), "1", ex=CANCEL_FLAG_TTL_S)

    def is_set(self, task_id: str) -> bool:
        return bool(self._redis.exists(self._keys.cancel(task_id)))


class RedisState:
    """Everything the distributed mode keeps in Redis, under one namespace."""

    def __init__(self, client: redis.Redis, namespace: str = "facefleet", lease_ttl_s: float = 60) -> None:
        self.redis = client
        self.keys = KeySpace(namespace)
        self.lease_ttl_s = lease_ttl_s
        self.checkpoints = RedisCheckpoints(client, self.keys)
        self.cancel_flags = CancelFlags(client, self.keys)

    @classmethod
    def from_url(cls, url: str, namespace: str = "facefleet", lease_ttl_s: float = 60) -> RedisState:
        return cls(connect(url), namespace, lease_ttl_s)

    def chunk_lease(self, task_id: str, chunk_index: int, stall_after_s: float | None = None) -> Lease:
        return Lease(
            self.redis,
            self.keys.lease(task_id, chunk_index),
            self.lease_ttl_s,
            stall_after_s,
            self.keys.leases(task_id),
        )

    def lease(self, task_id: str, part: str, stall_after_s: float | None = None) -> Lease:
        """The lease of a task's planning ("plan") or stitching ("stitch")."""
        return Lease(
            self.redis,
            self.keys.lease(task_id, part),
            self.lease_ttl_s,
            stall_after_s,
            self.keys.leases(task_id),
        )

    def is_leased(self, task_id: str, part: int | str) -> bool:
        return bool(self.redis.exists(self.keys.lease(task_id, part)))

    def task_busy(self, task_id: str) -> bool:
        """Whether anyone holds a lease on part of the task (its planning, a chunk, its
        stitch). An unreachable Redis answers yes: files are then left for a later pass."""
        try:
            named: set[str] = self.redis.smembers(self.keys.leases(task_id))  # type: ignore[assignment]
            return bool(named) and int(self.redis.exists(*named)) > 0  # type: ignore[arg-type]
        except redis.RedisError:
            return True

    def mark_once(self, name: str, ttl_s: float) -> bool:
        """True the first time ``name`` is marked within ``ttl_s`` (a cheap rate limit)."""
        return bool(self.redis.set(self.keys.marker(name), "1", nx=True, px=max(1, int(ttl_s * 1000))))

    def count_start(self, task_id: str, part: str, generation: int) -> int:
        """How many times ``part`` ("plan", "stitch") of the task's ``generation`` (its retry
        count) has been started, this one included."""
        key = self.keys.marker(f"starts:{task_id}:{part}:{generation}")
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, PROGRESS_TTL_S)
        count, _ = pipe.execute()
        return int(count)

    def epoch_began(self) -> tuple[float, bool]:
        """When Redis began holding its present data (Unix seconds), and whether it began just
        now: a missing marker means the first pass ever, or Redis lost its data (a flush, a
        restart without persistence). Every pass reads the same time, so a pass that fails
        half-way does not lose the news."""
        key = self.keys.marker("epoch")
        now = time.time()
        if self.redis.set(key, repr(now), nx=True):
            return now, True
        value: Any = self.redis.get(key)
        try:
            began = float(value)
        except (TypeError, ValueError):  # a race with a flush, or an older marker (a token)
            began = -1.0
        if not 0 < began <= now + 60:  # no time at all, or one that cannot be (a token of digits)
            self.redis.set(key, repr(now))
            return now, True
        return began, False

    def uncount_start(self, task_id: str, part: str, generation: int) -> None:
        """Take back a start that was put off (a service was unavailable): it is no attempt."""
        with contextlib.suppress(redis.RedisError):
            self.redis.decr(self.keys.marker(f"starts:{task_id}:{part}:{generation}"))

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def remember_request(self, task_id: str, request_id: str) -> None:
        """The request id a task was submitted under, for its workers' log lines."""
        with contextlib.suppress(redis.RedisError):  # a log field: never worth a failure
            self.redis.set(self.keys.marker(f"request:{task_id}"), request_id, ex=PROGRESS_TTL_S)

    def request_of(self, task_id: str) -> str | None:
        try:
            value = self.redis.get(self.keys.marker(f"request:{task_id}"))
        except redis.RedisError:
            return None
        return str(value) if value is not None else None

    # ------------------------------------------------------------ the fleet, as the dispatcher sees it

    def announce_worker(
        self, name: str, slots: int, ttl_s: float, models: Iterable[str] | None = None
    ) -> None:
        """``name`` takes chunks with ``slots`` processes for the next ``ttl_s`` seconds, and
        has ``models`` (present and verified on its host; None: it does not say)."""
        pipe = self.redis.pipeline()
        pipe.zadd(self.keys.marker("workers"), {name: time.time() + ttl_s})
        pipe.hset(self.keys.marker("worker-slots"), name, str(slots))
        if models is not None:
            pipe.hset(self.keys.marker("worker-models"), name, json.dumps(sorted(models)))
        pipe.execute()

    def withdraw_worker(self, name: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.zrem(self.keys.marker("workers"), name)

    def _live_workers(self) -> list[str]:
        now = time.time()
        self.redis.zremrangebyscore(self.keys.marker("workers"), "-inf", now)
        names: list[str] = self.redis.zrangebyscore(self.keys.marker("workers"), now, "+inf")  # type: ignore[assignment]
        self._prune_slots(set(names))
        return names

    def worker_slots(self) -> int:
        """Chunk slots of the workers that announced themselves lately."""
        names = self._live_workers()
        if not names:
            return 0
        slots: list[str | None] = self.redis.hmget(self.keys.marker("worker-slots"), names)  # type: ignore[assignment]
        return sum(int(n or 1) for n in slots)

    def worker_models(self) -> dict[str, frozenset[str] | None]:
        """The models of each worker that takes chunks now (None: it did not say); an
        unreachable Redis knows of no worker (a submission then waits for workers)."""
        try:
            names = self._live_workers()
            found: list[str | None] = (
                self.redis.hmget(self.keys.marker("worker-models"), names) if names else []  # type: ignore[assignment]
            )
        except redis.RedisError as exc:
            log.warning("the workers' models are unknown (%s)", type(exc).__name__)
            return {}
        return {
            name: frozenset(json.loads(models)) if models else None
            for name, models in zip(names, found, strict=True)
        }

    def _prune_slots(self, live: set[str]) -> None:
        """Drop the slot counts and model lists of workers gone from the fleet (one field per
        node name would otherwise stay for ever)."""
        for key in (self.keys.marker("worker-slots"), self.keys.marker("worker-models")):
            gone = [name for name in self.redis.hkeys(key) if name not in live]  # type: ignore[union-attr]
            if gone:
                self.redis.hdel(key, *gone)

    def record_work(self, frames: int, seconds: float) -> None:
        """Frames a worker processed in ``seconds`` of its time (throughput, per 10 s bucket)."""
        key = self.keys.marker(f"work:{int(time.time() // METER_BUCKET_S)}")
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline()
            pipe.hincrby(key, "frames", frames)
            pipe.hincrbyfloat(key, "seconds", seconds)
            pipe.expire(key, int(METER_WINDOW_S + 2 * METER_BUCKET_S))
            pipe.execute()

    def fps_per_slot(self) -> float | None:
        """Frames per second one worker slot did over the last few minutes (None: no work
        measured)."""
        bucket = int(time.time() // METER_BUCKET_S)
        pipe = self.redis.pipeline()
        for past in range(int(METER_WINDOW_S // METER_BUCKET_S) + 1):
            pipe.hmget(self.keys.marker(f"work:{bucket - past}"), ["frames", "seconds"])
        frames = seconds = 0.0
        for got_frames, got_seconds in pipe.execute():
            frames += float(got_frames or 0)
            seconds += float(got_seconds or 0)
        return frames / seconds if seconds > 0 and frames > 0 else None

    def set_phase(self, task_id: str, phase: str, percent: float | None = None) -> None:
        """What the task's planner or stitcher is doing (probing, planning, stitching, uploading)."""
        with contextlib.suppress(redis.RedisError):
            key = self.keys.marker(f"phase:{task_id}")
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping={"phase": phase, "percent": "" if percent is None else f"{percent:.1f}"})
            pipe.expire(key, PROGRESS_TTL_S)
            pipe.execute()

    def phase(self, task_id: str) -> tuple[str, float | None] | None:
        try:
            got: dict[str, str] = self.redis.hgetall(self.keys.marker(f"phase:{task_id}"))  # type: ignore[assignment]
        except redis.RedisError:
            return None
        if not got:
            return None
        return got["phase"], float(got["percent"]) if got.get("percent") else None
