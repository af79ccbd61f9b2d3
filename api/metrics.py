"""The API's Prometheus metrics: its own requests (observed as they are answered, in every
gunicorn process, merged at scrape time), plus the fleet's state read from PostgreSQL and
the broker with indexed queries, at most once per scrape interval per process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from facefleet.events.webhooks import oldest_undelivered_s
from facefleet.fleet.queues import CHUNKS, PLANNING, STITCHING
from facefleet.fleet.readiness import ReadyBoard
from facefleet.observability.metrics import Cached, exposition_registry
from facefleet.records.db import Chunk, Task, Usage
from facefleet.records.states import ChunkState, TaskState

if TYPE_CHECKING:
    from api.state import ApiState

log = logging.getLogger(__name__)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

REQUESTS = Counter(
    "facefleet_http_requests", "HTTP requests answered", ["method", "endpoint", "status"], registry=None
)
REQUEST_DURATION = Histogram(
    "facefleet_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL rule) and status",
    ["route", "status"],
    buckets=REQUEST_BUCKETS,
    registry=None,
)


class Metrics:
    def __init__(self, api: ApiState) -> None:
        self.registry = exposition_registry(FleetCollector(api), own=(REQUESTS, REQUEST_DURATION))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        REQUESTS.labels(method, route, str(status)).inc()
        REQUEST_DURATION.labels(route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FleetCollector(Collector):
    """Tasks and chunks by state and the work waiting for each queue (by priority), read
    from PostgreSQL by indexed counts, and the broker's waiting messages: gauges, cached for
    a scrape interval. Frames processed: from the usage rows, which deleting a task keeps."""

    def __init__(self, api: ApiState) -> None:
        self._api = api
        self._database = Cached(self._read_database)
        self._broker = Cached(lambda: self._api.producer.queue_depths())
        state = api.services.state
        self._ready = Cached(lambda: ReadyBoard(state.redis, state.keys).ready_workers())

    def collect(self) -> Iterator[Metric]:
        try:
            yield from _database_families(self._database.get())
            yield CounterMetricFamily(
                "facefleet_frames_processed", "Frames processed by the workers", value=self._frames()
            )
        except Exception as exc:
            log.warning("metrics: database unavailable: %s", exc)
        yield from _per_queue(
            "facefleet_broker_messages", "Messages ready in each broker queue", self._broker, "broker"
        )
        yield from _per_queue(
            "facefleet_workers_ready", "Workers ready (models warm) for each queue", self._ready, "Redis"
        )

    def _read_database(self) -> dict[str, Any]:
        with self._api.services.ctx.read_sessions() as session:
            tasks = {
                s: session.scalar(select(func.count()).select_from(Task).where(Task.state == s)) or 0
                for s in TaskState
            }
            chunks = {
                s: session.scalar(select(func.count()).select_from(Chunk).where(Chunk.state == s)) or 0
                for s in ChunkState
            }
            waiting = _by_priority(
                session, select(Chunk.priority, func.count()).where(Chunk.state == ChunkState.QUEUED)
            )
            planning = _by_priority(
                session, select(Task.priority, func.count()).where(Task.state == TaskState.QUEUED)
            )
            stitching = _by_priority(
                session, select(Task.priority, func.count()).where(Task.state == TaskState.STITCHING)
            )
            oldest_webhook = oldest_undelivered_s(session)
        depth = {CHUNKS: waiting, PLANNING: planning, STITCHING: stitching}
        return {"tasks": tasks, "chunks": chunks, "depth": depth, "oldest_webhook": oldest_webhook}

    def _frames(self) -> int:
        """Read at every scrape (a few usage rows), never cached: a counter that one process
        cached while another read it fresh would seem to go down between scrapes."""
        with self._api.services.ctx.read_sessions() as session:
            return int(session.scalar(select(func.coalesce(func.sum(Usage.frames), 0))) or 0)


def _per_queue(
    name: str, documentation: str, figures: Cached[dict[str, int]], source: str
) -> Iterator[Metric]:
    """A gauge by queue from ``figures``; nothing (and a warning) while ``source`` does not answer."""
    try:
        family = GaugeMetricFamily(name, documentation, labels=["queue"])
        for queue, count in figures.get().items():
            family.add_metric([queue], count)
        yield family
    except Exception as exc:
        log.warning("metrics: %s unavailable: %s", source, exc)


def _by_priority(session: Any, query: Any) -> dict[int, int]:
    column = query.selected_columns[0]
    return {int(p): int(n) for p, n in session.execute(query.group_by(column)).all()}


def _database_families(figures: dict[str, Any]) -> Iterator[Metric]:
    tasks = GaugeMetricFamily("facefleet_tasks", "Tasks by state", labels=["state"])
    for task_state, count in figures["tasks"].items():
        tasks.add_metric([task_state.value], count)
    yield tasks
    chunks = GaugeMetricFamily("facefleet_chunks", "Chunks by state", labels=["state"])
    for chunk_state, count in figures["chunks"].items():
        chunks.add_metric([chunk_state.value], count)
    yield chunks
    depth = GaugeMetricFamily(
        "facefleet_queue_depth",
        "Work waiting for each queue, by priority (PostgreSQL is the queue of record)",
        labels=["queue", "priority"],
    )
    for queue, counts in figures["depth"].items():
        for priority in range(10):
            depth.add_metric([queue, str(priority)], counts.get(priority, 0))
    yield depth
    yield GaugeMetricFamily(
        "facefleet_webhook_oldest_undelivered_seconds",
        "Age of the oldest webhook event neither delivered nor given up (0: none)",
        value=figures["oldest_webhook"],
    )
