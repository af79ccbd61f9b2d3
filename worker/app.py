"""The Celery application, built from Settings at the entry point (``facefleet worker``,
``facefleet flower``); nothing binds a broker at import time.

Housekeeping (the reaper, the dispatcher) is no Celery task: every worker runs it in its
fleet loop thread (``worker/dispatcher.py``), so Flower's task list shows the users' work only.

Delivery policy: messages are acknowledged after the work (``task_acks_late``) and given
back when the worker process dies (``task_reject_on_worker_lost``); a worker takes one
message at a time (prefetch 1). Planning, chunks (GPU) and stitching have their own queues so
that each can get its own pool of workers.
"""

from __future__ import annotations

import os
from typing import Any

from kombu import Queue

from facefleet.config.settings import Settings
from facefleet.modes.distributed import (
    CHUNK_TASK,
    CHUNKS,
    PLAN_TASK,
    PLANNING,
    QUEUES,
    STITCH_TASK,
    STITCHING,
    queue_name,
)
from pipeline.hwaccel import choose
from worker.base import FaceFleetCelery
from worker.breaker import Breaker
from worker.lifecycle import Lifecycle

PROCESS_START_S = 600.0

# The environment variables Celery adds while the worker starts (its logging set-up, run just
# after ``worker_init``, where our threads start and connect to PostgreSQL and Redis).
CELERY_STARTUP_ENV = (
    "CELERY_LOG_LEVEL",
    "CELERY_LOG_FILE",
    "CELERY_LOG_REDIRECT",
    "CELERY_LOG_REDIRECT_LEVEL",
    "_MP_FORK_LOGLEVEL_",
    "_MP_FORK_LOGFILE_",
    "_MP_FORK_LOGFORMAT_",
)


def preset_celery_environment() -> None:
    """Give the variables Celery sets at start-up a value before any thread starts.

    glibc's ``setenv`` grows the environment by reallocating its array, and ``getenv`` in
    another thread (libpq, the resolver, with the GIL released) may still read the freed
    one: the worker died of SIGSEGV in libc now and then, right after ``worker_init``. A
    name that already exists is replaced in place, which is safe. An empty value means the
    same to Celery as an absent one."""
    for name in CELERY_STARTUP_ENV:
        os.environ.setdefault(name, "")


def create_celery(
    settings: Settings,
    *,
    segment_pause_s: float = 0.0,
    node_name: str = "facefleet",
    chunk_slots: int = 1,
    pool_slots: int = 1,
    metrics_port: int = 0,
    served: tuple[str, ...] = QUEUES,
    pool: str = "prefork",
) -> FaceFleetCelery:
    app = FaceFleetCelery("facefleet", broker=settings.effective_broker_url, set_as_current=False)
    app.settings = settings
    app.segment_pause_s = segment_pause_s
    app.pool_slots, app.metrics_port = pool_slots, metrics_port
    app.node_name, app.chunk_slots, app.served, app.pool_kind = node_name, chunk_slots, served, pool
    warm_processes = chunk_slots if pool == "prefork" else min(chunk_slots, 1)
    # NVDEC where chosen; distributed segments are encoded on the CPU (pipeline.hwaccel)
    codecs = choose(settings.hwaccel).decode_only()
    app.lifecycle = Lifecycle(warm_processes, list(settings.warm_models), codecs)
    app.breaker = Breaker(settings.worker_breaker_failures, settings.worker_breaker_recheck_s)
    app.conf.update(celery_config(settings))
    from worker import tasks

    tasks.register(app)
    return app


def celery_config(settings: Settings) -> dict[str, Any]:
    queues = {name: queue_name(settings, name) for name in QUEUES}
    return {
        "task_queues": [Queue(q, routing_key=q) for q in queues.values()],
        "task_default_queue": queues[PLANNING],
        "task_routes": {
            PLAN_TASK: {"queue": queues[PLANNING]},
            CHUNK_TASK: {"queue": queues[CHUNKS]},
            STITCH_TASK: {"queue": queues[STITCHING]},
        },
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Flower and the metrics see every task
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "broker_connection_retry_on_startup": True,
        # a prefork child loads and warms its models before it says it is up
        "worker_proc_alive_timeout": PROCESS_START_S,
    }


def worker_queues(settings: Settings, names: list[str] | None = None) -> list[str]:
    return [queue_name(settings, name) for name in (names or list(QUEUES))]


__all__ = ["CHUNKS", "PLANNING", "STITCHING", "FaceFleetCelery", "create_celery", "worker_queues"]
