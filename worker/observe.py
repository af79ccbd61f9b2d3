"""What a worker tells its operators, hooked on Celery's signals: every task's log lines
carry its task id, chunk and the request id it was submitted under (a Celery message
header, or else the one the API remembered for the task); the pool's busy share is a
gauge; the main process serves ``/metrics`` for the whole pool on ``--metrics-port``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from celery import signals
from celery.apps import worker as celery_worker
from prometheus_client import Gauge

from facefleet.fleet.queues import CHUNK_TASK
from facefleet.observability import logs
from facefleet.observability.metrics import (
    GpuCollector,
    exposition_registry,
    initialise_labels,
    mark_process_dead,
)
from worker.base import FaceFleetCelery

log = logging.getLogger(__name__)

REQUEST_HEADER = "request_id"
# a worker's own gauge (imported by workers only, so the API reports none)
WORKER_BUSY = Gauge(
    "facefleet_worker_busy_ratio",
    "Share of this worker's pool slots running a task",
    multiprocess_mode="livesum",
    registry=None,
)


def register(app: FaceFleetCelery, request_of: Any) -> None:
    """Connect the hooks; ``request_of(task_id)`` finds a task's request id (or None)."""

    @signals.setup_logging.connect(weak=False)
    def _keep_our_logging(**_: Any) -> None:  # configured at the entry point; Celery leaves it
        if logs.renders_json():
            celery_worker.safe_say = _say_as_json
            # what libraries print goes through the handler too (stderr stays as it is: the
            # handler writes there)
            app.log.redirect_stdouts_to_logger(logging.getLogger("stdout"), logging.INFO, stderr=False)

    @signals.task_prerun.connect(weak=False)
    def _bind(task: Any = None, args: Any = None, **_: Any) -> None:
        logs.clear()
        WORKER_BUSY.inc(1 / max(1, app.pool_slots))  # inc/dec: a threads pool shares the process
        if not args or not isinstance(args[0], str):
            return
        fields: dict[str, Any] = {"task_id": args[0]}
        if task is not None and task.name == CHUNK_TASK and len(args) > 1:
            fields["chunk"] = args[1]
        request_id = _header(task) or request_of(args[0])
        if request_id:
            fields["request_id"] = request_id
        logs.bind(**fields)

    @signals.task_postrun.connect(weak=False)
    def _unbind(**_: Any) -> None:
        WORKER_BUSY.dec(1 / max(1, app.pool_slots))
        logs.clear()

    @signals.before_task_publish.connect(weak=False)
    def _pass_request_id(body: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        """A message about the task being worked on carries its request id along."""
        request_id, task_id = logs.bound("request_id"), logs.bound("task_id")
        args = body[0] if isinstance(body, list | tuple) and body else None
        if headers is not None and request_id and args and args[0] == task_id:
            headers.setdefault(REQUEST_HEADER, request_id)

    @signals.worker_process_shutdown.connect(weak=False)
    def _forget_process(**_: Any) -> None:
        mark_process_dead(os.getpid())

    @signals.worker_ready.connect(weak=False)
    def _serve_metrics(**_: Any) -> None:
        initialise_labels()
        if app.metrics_port:
            serve_metrics(app.metrics_port)


def _say_as_json(msg: str, f: Any = sys.__stderr__) -> None:
    """What Celery says from its signal handlers (a shutdown), as a JSON line: written with
    one os.write, as Celery does, since a signal handler must not take the logging lock."""
    line = {
        "event": str(msg).strip(),
        "level": "warning",
        "logger": "celery.apps.worker",
        "service": "worker",
    }
    line["ts"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    stream = f or sys.__stderr__
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.write(stream.fileno(), (json.dumps(line) + "\n").encode())  # type: ignore[union-attr]


def _header(task: Any) -> str | None:
    request = getattr(task, "request", None)
    if request is None:
        return None
    found = getattr(request, REQUEST_HEADER, None) or (getattr(request, "headers", None) or {}).get(
        REQUEST_HEADER
    )
    return str(found) if found else None


def serve_metrics(port: int) -> None:
    """``/metrics`` of this worker (all its pool's processes) on ``port``, in a thread of the
    main process. A port already taken costs the metrics, never the worker."""
    from prometheus_client import start_http_server

    try:
        start_http_server(
            port, addr="0.0.0.0", registry=exposition_registry(GpuCollector(), own=[WORKER_BUSY])
        )
    except OSError as exc:
        log.error("metrics not served: port %d: %s", port, exc)
        return
    log.info("metrics served on port %d", port, extra={"port": port})
