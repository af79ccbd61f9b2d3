"""The fleet's Prometheus metrics, named once: what the API and the workers export, and what
the alert rules and the dashboard in ``deploy/observability/`` may name. Tests hold all three
to this list (offline) and to a live ``/metrics`` (after a job)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricName:
    name: str
    kind: Kind
    labels: tuple[str, ...] = ()
    # exported only where this holds (None: always, once the fleet has run a job)
    only_with: str | None = None

    def series(self) -> tuple[str, ...]:
        """The sample names a scrape shows for it."""
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        if self.kind == "counter":
            return (self.name,) if self.name.endswith("_total") else (f"{self.name}_total",)
        return (self.name,)


METRICS: tuple[MetricName, ...] = (
    MetricName("facefleet_frame_latency_seconds", "histogram", ("processor",)),
    MetricName("facefleet_queue_wait_seconds", "histogram"),
    MetricName("facefleet_task_turnaround_seconds", "histogram", ("outcome",)),
    MetricName("facefleet_chunk_attempts_total", "counter", ("outcome",)),
    MetricName("facefleet_lease_expired_total", "counter"),
    MetricName("facefleet_queue_depth", "gauge", ("queue", "priority")),
    MetricName("facefleet_worker_busy_ratio", "gauge"),
    MetricName("facefleet_gpu_memory_used_bytes", "gauge", ("gpu",), only_with="a GPU"),
    MetricName("facefleet_gpu_utilisation_ratio", "gauge", ("gpu",), only_with="a GPU"),
    MetricName("facefleet_http_request_duration_seconds", "histogram", ("route", "status")),
    MetricName("facefleet_http_requests", "counter", ("method", "endpoint", "status")),
    MetricName("facefleet_chunk_duration_seconds", "histogram"),
    # the fleet's state, read from PostgreSQL and the broker at scrape time by the API
    MetricName("facefleet_tasks", "gauge", ("state",)),
    MetricName("facefleet_chunks", "gauge", ("state",)),
    MetricName("facefleet_frames_processed", "counter"),
    MetricName("facefleet_broker_messages", "gauge", ("queue",)),
    # ready workers per queue: models loaded and warmed (the warm-readiness work)
    MetricName("facefleet_workers_ready", "gauge", ("queue",)),
    # webhooks: attempts by outcome, state change to receipt, the oldest undelivered event's age
    MetricName("facefleet_webhook_deliveries_total", "counter", ("outcome",), only_with="webhooks"),
    MetricName("facefleet_webhook_delivery_latency_seconds", "histogram", only_with="webhooks"),
    MetricName("facefleet_webhook_oldest_undelivered_seconds", "gauge"),
    # the quality gate (issue 27): each sampled swapped face's identity similarity, and the
    # tasks that succeeded under a threshold; observed at the stitch of a measured task
    MetricName(
        "facefleet_quality_id_similarity", "histogram", ("tenant", "model"), only_with="a face swap measured"
    ),
    MetricName(
        "facefleet_quality_failed_total",
        "counter",
        ("tenant", "processor"),
        only_with="a task failing the gate",
    ),
    # the content policy (issue 26): tasks flagged (flag) or blocked (block), by policy
    MetricName(
        "facefleet_content_flagged_total",
        "counter",
        ("policy",),
        only_with="a task the content policy flagged",
    ),
)

BY_NAME: dict[str, MetricName] = {metric.name: metric for metric in METRICS}
