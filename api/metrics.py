"""Prometheus metrics: the API's own requests, plus the fleet's state read at scrape time
(tasks and chunks by state, frames processed, chunk durations, queue depth)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import func, select

from facefleet.db import Chunk, Task, utcnow
from facefleet.states import ChunkState, TaskState

if TYPE_CHECKING:
    from api.state import ApiState

log = logging.getLogger(__name__)

CHUNK_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)
DURATION_WINDOW = timedelta(hours=24)


class Metrics:
    def __init__(self, api: ApiState) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facefleet_http_requests_total",
            "HTTP requests answered",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facefleet_http_request_seconds", "HTTP request latency", ["endpoint"], registry=self.registry
        )
        self.registry.register(FleetCollector(api))

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FleetCollector:
    """Reads PostgreSQL and the broker at scrape time (every API replica reports the same)."""

    def __init__(self, api: ApiState) -> None:
        self._api = api

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._database()
        except Exception as exc:
            log.warning("metrics: database unavailable: %s", exc)
        try:
            depth = GaugeMetricFamily("facefleet_queue_depth", "Messages waiting per queue", labels=["queue"])
            for queue, count in self._api.producer.queue_depths().items():
                depth.add_metric([queue], count)
            yield depth
        except Exception as exc:
            log.warning("metrics: broker unavailable: %s", exc)

    def _database(self) -> Iterator[Metric]:
        sessions = self._api.services.sessions
        with sessions() as session:
            task_counts = dict(session.execute(select(Task.state, func.count()).group_by(Task.state)).all())
            chunk_counts = dict(
                session.execute(select(Chunk.state, func.count()).group_by(Chunk.state)).all()
            )
            frames = session.scalar(select(func.coalesce(func.sum(Task.frames_processed), 0)))
            durations = session.execute(
                select(Chunk.started_at, Chunk.finished_at).where(
                    Chunk.state == ChunkState.SUCCEEDED, Chunk.finished_at > utcnow() - DURATION_WINDOW
                )
            ).all()
        tasks = GaugeMetricFamily("facefleet_tasks", "Tasks by state", labels=["state"])
        for task_state in TaskState:
            tasks.add_metric([task_state.value], task_counts.get(task_state, 0))
        yield tasks
        chunks = GaugeMetricFamily("facefleet_chunks", "Chunks by state", labels=["state"])
        for chunk_state in ChunkState:
            chunks.add_metric([chunk_state.value], chunk_counts.get(chunk_state, 0))
        yield chunks
        yield CounterMetricFamily(
            "facefleet_frames_processed", "Frames processed by the workers", value=int(frames or 0)
        )
        yield _histogram(
            "facefleet_chunk_duration_seconds",
            "Wall time of chunks that succeeded in the last 24 hours",
            [(end - start).total_seconds() for start, end in durations if start and end],
        )


def _histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound in CHUNK_DURATION_BUCKETS:
        running = sum(1 for v in values if v <= bound)
        buckets.append((str(float(bound)), running))
    buckets.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=sum(values))
