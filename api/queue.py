"""Sending work to the workers: a Celery producer built from Settings (task names and queues
are the contract in facefleet.fleet.queues; the API never imports the worker)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from facefleet.config.settings import Settings
from facefleet.modes.distributed import (
    CHUNK_TASK,
    CHUNKS,
    PLAN_TASK,
    PLANNING,
    STITCH_TASK,
    STITCHING,
    queue_name,
    waiting_messages,
)
from facefleet.observability import logs


class Producer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.celery = Celery("facefleet-api", broker=settings.effective_broker_url, set_as_current=False)
        self.celery.conf.update(
            task_serializer="json",
            broker_connection_retry_on_startup=True,
            broker_connection_timeout=5,
            task_send_sent_event=True,
        )

    def _send(self, name: str, queue: str, args: list[Any], **options: Any) -> None:
        request_id = logs.bound("request_id")
        self.celery.send_task(
            name,
            args=args,
            headers={"request_id": request_id} if request_id else None,
            queue=queue_name(self._settings, queue),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            **options,
        )

    def plan(self, task_id: str) -> None:
        self._send(PLAN_TASK, PLANNING, [task_id])

    def chunk(self, task_id: str, chunk_index: int) -> None:
        self._send(CHUNK_TASK, CHUNKS, [task_id, chunk_index])

    def stitch(self, task_id: str) -> None:
        self._send(STITCH_TASK, STITCHING, [task_id])

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue (ready, not yet taken by a worker)."""
        return waiting_messages(self.celery, self._settings)

    def ping(self) -> None:
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
