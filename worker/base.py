"""The Celery application class the worker's modules share (built in ``worker.app``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery

from facefleet.config.settings import Settings
from worker.lifecycle import Lifecycle

if TYPE_CHECKING:
    from worker.breaker import Breaker


class FaceFleetCelery(Celery):
    """A Celery app that carries the settings it was built from."""

    settings: Settings
    segment_pause_s: float = 0.0
    node_name: str = "facefleet"  # this worker's node name (Celery's hostname)
    chunk_slots: int = 1  # processes taking chunks (0: the worker does not take the chunks queue)
    pool_slots: int = 1  # processes (or threads) of the pool
    metrics_port: int = 0  # where the main process serves /metrics (0: nowhere)
    served: tuple[str, ...] = ()  # the queues it takes (short names)
    pool_kind: str = "prefork"  # the worker pool (Celery's own `pool` is its connection pool)
    lifecycle: Lifecycle
    breaker: Breaker  # opens when this host is broken (see worker.breaker)
