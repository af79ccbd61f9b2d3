"""Worker readiness, seen from two places.

* The fleet (Redis): each worker's fleet loop announces it ready per queue it serves, with a
  TTL it keeps refreshing; the API's ``/readyz`` counts the ready workers of each queue. A
  worker that dies simply stops refreshing.
* Its own host (a file): the same loop writes ``<work dir>/ready/<node>.json`` each pass,
  ready or not and why, so that ``facefleet worker --check`` (a probe run in the worker's own
  container, with the same FACEFLEET_WORK_DIR) finds its worker without knowing its node
  name. A file not refreshed for ``FILE_FRESH_S`` belongs to a dead or stuck worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from facefleet.fleet.queues import CHUNKS, PLANNING, QUEUES, STITCHING
from facefleet.fleet.redis_state import KeySpace
from facefleet.records.db import Chunk, Task
from facefleet.records.states import ChunkState, TaskState

FILE_FRESH_S = 30.0  # a fleet loop that has not passed for this long is dead or stuck


class ReadyBoard:
    """Ready workers per queue: one sorted set per queue, node -> expiry time."""

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self._redis, self._keys = client, keys

    def _key(self, queue: str) -> str:
        return self._keys.marker(f"ready:{queue}")

    def announce(self, node: str, queues: Iterable[str], ttl_s: float) -> None:
        now = time.time()
        pipe = self._redis.pipeline()
        for queue in queues:
            pipe.zremrangebyscore(self._key(queue), "-inf", now)  # workers gone for good
            pipe.zadd(self._key(queue), {node: now + ttl_s})
        pipe.execute()

    def report_providers(self, node: str, providers: dict[str, str]) -> None:
        """Which execution provider took each of ``node``'s models (its warm-up's report)."""
        self._redis.hset(self._keys.marker("providers"), node, json.dumps(providers, sort_keys=True))

    def providers(self) -> dict[str, dict[str, str]]:
        """Node -> model -> provider, for the workers ready for the chunks queue now."""
        now = time.time()
        live = self._redis.zrangebyscore(self._key(CHUNKS), now, "+inf")
        if not live:
            return {}
        found = self._redis.hmget(self._keys.marker("providers"), live)  # type: ignore[arg-type]
        return {
            (n.decode() if isinstance(n, bytes) else str(n)): json.loads(v)
            for n, v in zip(live, found, strict=True)  # type: ignore[arg-type]
            if v
        }

    def withdraw(self, node: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self._redis.hdel(self._keys.marker("providers"), node)
            pipe = self._redis.pipeline()
            for queue in QUEUES:
                pipe.zrem(self._key(queue), node)
            pipe.execute()

    def ready_workers(self) -> dict[str, int]:
        now = time.time()
        pipe = self._redis.pipeline()
        for queue in QUEUES:
            pipe.zcount(self._key(queue), now, "+inf")
        return {queue: int(n) for queue, n in zip(QUEUES, pipe.execute(), strict=True)}


def queues_with_work(session: Session) -> dict[str, bool]:
    """Whether each queue has work waiting or running (EXISTS on the indexed states)."""
    running_task = exists().where(and_(Task.id == Chunk.task_id, Task.state == TaskState.RUNNING))
    probes = {
        PLANNING: exists().where(Task.state.in_([TaskState.QUEUED, TaskState.PLANNING])),
        CHUNKS: exists().where(Chunk.state.in_([ChunkState.QUEUED, ChunkState.RUNNING]), running_task),
        STITCHING: exists().where(Task.state == TaskState.STITCHING),
    }
    return {queue: bool(session.scalar(select(probe))) for queue, probe in probes.items()}


@dataclass(frozen=True)
class HostReport:
    """What one worker of this host last said about itself."""

    node: str
    ready: bool
    reason: str
    queues: list[str]
    age_s: float


def report_path(work_dir: Path, node: str) -> Path:
    return work_dir / "ready" / f"{node.replace('/', '_')}.json"


def write_report(work_dir: Path, node: str, queues: list[str], ready: bool, reason: str) -> None:
    """Atomically (the probe never reads half a file)."""
    path = report_path(work_dir, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps({"node": node, "ready": ready, "reason": reason, "queues": queues}))
    partial.replace(path)


def remove_report(work_dir: Path, node: str) -> None:
    report_path(work_dir, node).unlink(missing_ok=True)


def host_reports(work_dir: Path) -> list[HostReport]:
    """The reports of this host's workers, freshest first (unreadable ones are skipped)."""
    reports = []
    for path in (work_dir / "ready").glob("*.json"):
        try:
            age = time.time() - path.stat().st_mtime
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        reports.append(HostReport(body["node"], bool(body["ready"]), body["reason"], body["queues"], age))
    return sorted(reports, key=lambda r: r.age_s)


def check_host(work_dir: Path, node: str | None = None, alive_only: bool = False) -> tuple[bool, str]:
    """(ready, message) for this host's worker (``node``: that one; else any of them); with
    ``alive_only``, whether its loop still reports at all, ready or not (a liveness probe: a
    worker waiting out a Redis outage is not ready, and must not be restarted for it)."""
    reports = [r for r in host_reports(work_dir) if node is None or r.node == node]
    fresh = [r for r in reports if r.age_s <= FILE_FRESH_S]
    for report in fresh:
        if report.ready or alive_only:
            state = "ready" if report.ready else f"alive, not ready: {report.reason}"
            return True, f"{report.node} is {state} ({', '.join(report.queues)})"
    if fresh:
        return False, f"{fresh[0].node} is not ready: {fresh[0].reason}"
    if reports:
        return False, (f"{reports[0].node} has not reported for {reports[0].age_s:.0f} s (stopped or stuck)")
    return False, (
        f"no worker has reported in {work_dir / 'ready'} (is `facefleet worker` running here, with "
        "the same FACEFLEET_WORK_DIR?)"
    )
