"""The fleet's Prometheus metrics, observed where the event happens (counters and histograms
only ever go up), and how a process serves them.

The API (gunicorn) and the workers (Celery's pool) are several processes each, so both run
prometheus_client's multiprocess mode: ``facefleet.observability.metrics_dir.use_private_dir`` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory of this deployment before anything imports
prometheus_client, every process writes its values there, and the process that answers
``/metrics`` merges them.
Labels are bounded: never a task id.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as mp
from prometheus_client.registry import Collector

from facefleet.observability.metrics_dir import MULTIPROC_ENV
from pipeline.devices import GpuUsage

SCRAPE_CACHE_S = 15.0  # figures read from the database or a device last this long

# per-frame times from 1 ms to 10 s; queue waits and turnarounds from half a second to a day
FRAME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400)
CHUNK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)

FRAME_LATENCY = Histogram(
    "facefleet_frame_latency_seconds",
    "Time each frame took through decode, the processors and the encoder, by processor chain",
    ["processor"],
    buckets=FRAME_BUCKETS,
    registry=None,
)
QUEUE_WAIT = Histogram(
    "facefleet_queue_wait_seconds",
    "Time from a chunk being ready (planned, or its retry due) to a worker starting it",
    buckets=WAIT_BUCKETS,
    registry=None,
)
TASK_TURNAROUND = Histogram(
    "facefleet_task_turnaround_seconds",
    "Time from submission to a task's end, by outcome",
    ["outcome"],
    buckets=WAIT_BUCKETS,
    registry=None,
)
CHUNK_ATTEMPTS = Counter(
    "facefleet_chunk_attempts", "Chunk attempts that ended, by outcome", ["outcome"], registry=None
)
CHUNK_DURATION = Histogram(
    "facefleet_chunk_duration_seconds",
    "Wall time of chunks that succeeded, from first start to done",
    buckets=CHUNK_BUCKETS,
    registry=None,
)
LEASE_EXPIRED = Counter(
    "facefleet_lease_expired", "Chunks whose lease expired (their worker was lost or stalled)", registry=None
)
WEBHOOK_DELIVERIES = Counter(
    "facefleet_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, failed: tried again later, gave_up)",
    ["outcome"],
    registry=None,
)
WEBHOOK_LATENCY = Histogram(
    "facefleet_webhook_delivery_latency_seconds",
    "Time from a webhook event's state change to its receiver taking it",
    buckets=WAIT_BUCKETS,
    registry=None,
)
# identity similarity from -1 to 1, finest around the 0.85 threshold
SIMILARITY_BUCKETS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0)
QUALITY_ID_SIMILARITY = Histogram(
    "facefleet_quality_id_similarity",
    "The quality gate's identity similarity of each sampled swapped face to its source, per task "
    "that succeeded, by tenant and swapper model",
    ["tenant", "model"],
    buckets=SIMILARITY_BUCKETS,
    registry=None,
)
QUALITY_FAILED = Counter(
    "facefleet_quality_failed",
    "Tasks that succeeded under a quality threshold (passed: false), by tenant and processor chain",
    ["tenant", "processor"],
    registry=None,
)
CONTENT_FLAGGED = Counter(
    "facefleet_content_flagged",
    "Tasks whose sampled input frames the content policy flagged (flag: the task succeeded, "
    "marked flagged; block: it failed with reason content_policy), by policy",
    ["policy"],
    registry=None,
)
OWN_METRICS = (
    FRAME_LATENCY,
    QUEUE_WAIT,
    TASK_TURNAROUND,
    CHUNK_ATTEMPTS,
    CHUNK_DURATION,
    LEASE_EXPIRED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LATENCY,
    QUALITY_ID_SIMILARITY,
    QUALITY_FAILED,
    CONTENT_FLAGGED,
)
TURNAROUND_OUTCOMES = ("succeeded", "failed", "cancelled")
ATTEMPT_OUTCOMES = (
    "succeeded",
    "retry",
    "retry-later",
    "failed",
    "blocked",
    "cancelled",
    "task-ended",
    "lease-lost",
)


def multiprocess() -> bool:
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def exposition_registry(*collectors: Collector, own: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for ``/metrics``: every process's values (multiprocess mode) or this
    process's own (the fleet's and ``own``), plus ``collectors`` (read at scrape time)."""
    registry = CollectorRegistry()
    if multiprocess():
        registry.register(_LiveProcesses())
    else:
        for metric in (*OWN_METRICS, *own):
            registry.register(metric)
    for collector in collectors:
        registry.register(collector)
    return registry


def mark_process_dead(pid: int) -> None:
    if multiprocess():
        mp.mark_process_dead(pid)


class _LiveProcesses(Collector):
    """prometheus_client's MultiProcessCollector, after dropping the live gauges of
    processes that died without saying so (a pool child killed by the kernel)."""

    _LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db$")

    def __init__(self) -> None:
        self._path = os.environ[MULTIPROC_ENV]
        self._merged = mp.MultiProcessCollector(None, self._path)

    def collect(self) -> Iterable:  # type: ignore[type-arg]
        for name in os.listdir(self._path):
            found = self._LIVE_FILE.match(name)
            if found and not _alive(int(found.group(1))):
                mp.mark_process_dead(int(found.group(1)), self._path)
        return self._merged.collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def initialise_labels() -> None:
    """Outcomes at 0, so that rates and ratios have a series before the first event."""
    for outcome in TURNAROUND_OUTCOMES:
        TASK_TURNAROUND.labels(outcome)
    for outcome in ATTEMPT_OUTCOMES:
        CHUNK_ATTEMPTS.labels(outcome)


T = TypeVar("T")


class Cached(Generic[T]):
    """A value computed at most once per ``ttl_s`` (figures read at scrape time)."""

    def __init__(self, compute: Callable[[], T], ttl_s: float = SCRAPE_CACHE_S) -> None:
        self._compute, self._ttl_s = compute, ttl_s
        self._value: T | None = None
        self._at = -float("inf")

    def get(self) -> T:
        now = time.monotonic()
        if self._value is None or now - self._at >= self._ttl_s:
            self._value, self._at = self._compute(), now
        return self._value  # type: ignore[return-value]


def processor_label(processors: Iterable[str]) -> str:
    """The chain's name, e.g. ``face_swapper+face_enhancer`` (``none``: decode and encode)."""
    return "+".join(processors) or "none"


def gpu_memory_used_bytes() -> dict[str, int]:
    """Memory used per GPU (index -> bytes), by NVML where present, else nvidia-smi; empty without a GPU."""
    return {index: used.memory_used_bytes for index, used in _GPU.get().items()}


def gpu_utilisation() -> dict[str, float]:
    """The share of the last sample period each GPU was busy (index -> 0..1); empty without a GPU."""
    return {index: used.utilisation_ratio for index, used in _GPU.get().items()}


def _read_gpus() -> dict[str, GpuUsage]:
    from pipeline.devices import usage

    return usage()


_GPU: Cached[dict[str, GpuUsage]] = Cached(_read_gpus)


class GpuCollector(Collector):
    """``facefleet_gpu_memory_used_bytes`` and ``facefleet_gpu_utilisation_ratio``, only where
    a GPU is present."""

    def collect(self) -> Iterator:  # type: ignore[type-arg]
        from prometheus_client.core import GaugeMetricFamily

        used = _GPU.get()
        if not used:
            return
        memory = GaugeMetricFamily(
            "facefleet_gpu_memory_used_bytes", "Memory used on each GPU of this node", labels=["gpu"]
        )
        busy = GaugeMetricFamily(
            "facefleet_gpu_utilisation_ratio",
            "Share of the last sample period each GPU of this node was busy (0..1)",
            labels=["gpu"],
        )
        for index, figures in sorted(used.items()):
            memory.add_metric([index], figures.memory_used_bytes)
            busy.add_metric([index], figures.utilisation_ratio)
        yield memory
        yield busy
