"""The reaper (a periodic task): work whose holder died goes back to the queue.

* Chunks in state running whose lease is gone (the worker was killed, or stalled past the
  lease TTL) are set back to queued by the job core and re-enqueued, so a killed worker's
  chunk resumes within about one lease TTL plus one reaper interval, whatever the broker's
  own redelivery delay. While deciding, the reaper holds each chunk's lease itself, so a
  delivery that starts at that moment cannot be set back to queued under its feet.
* Tasks left in planning or stitching with no lease held get their message sent again
  (at most once per few lease TTLs: a message may simply be waiting in a deep queue).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from facefleet.db import Task, utcnow
from facefleet.distributed import Services
from facefleet.jobs import requeue_expired
from facefleet.redis_state import Lease
from facefleet.states import TaskState

log = logging.getLogger(__name__)

RESEND_EVERY_TTLS = 5


def reap(
    svc: Services,
    enqueue_chunk: Callable[[str, int], None],
    enqueue_plan: Callable[[str], None],
    enqueue_stitch: Callable[[str], None],
) -> int:
    """One pass; returns the number of messages sent. One reaper at a time (a Redis lock)."""
    state = svc.state
    if not state.mark_once("reaper", max(0.5, svc.settings.reaper_interval_s * 0.8)):
        return 0
    held: list[Lease] = []

    def chunk_is_leased(task_id: str, index: int) -> bool:
        lease = state.chunk_lease(task_id, index)
        if lease.acquire(heartbeat=False):
            held.append(lease)
            return False
        return True

    try:
        requeued = requeue_expired(svc.ctx, chunk_is_leased)
    finally:
        for lease in held:
            lease.release()
    for task_id, index in requeued:
        log.warning("chunk %d of task %s lost its worker: re-enqueued", index, task_id)
        enqueue_chunk(task_id, index)
    return len(requeued) + _resend_abandoned(svc, enqueue_plan, enqueue_stitch)


def _resend_abandoned(
    svc: Services, enqueue_plan: Callable[[str], None], enqueue_stitch: Callable[[str], None]
) -> int:
    ttl = svc.settings.lease_ttl_s
    quiet_since = utcnow() - timedelta(seconds=ttl)
    with svc.sessions() as session:
        rows = session.execute(
            select(Task.id, Task.state).where(
                Task.state.in_([TaskState.PLANNING, TaskState.STITCHING]), Task.updated_at < quiet_since
            )
        ).all()
    sent = 0
    for task_id, task_state in rows:
        part, send = (
            ("plan", enqueue_plan) if task_state == TaskState.PLANNING else ("stitch", enqueue_stitch)
        )
        if svc.state.is_leased(task_id, part):
            continue
        if svc.state.mark_once(f"resent:{task_id}:{part}", ttl * RESEND_EVERY_TTLS):
            log.warning("task %s was left in %s: message sent again", task_id, task_state.value)
            send(task_id)
            sent += 1
    return sent
