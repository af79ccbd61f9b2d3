"""The reaper: one pass of what keeps the fleet honest, run by every worker's fleet loop (one
worker at a time), never sent as a Celery task.

* Chunks in state running whose lease is gone (the worker was killed, or stalled past the
  lease TTL) go back to waiting, and the dispatcher releases them again at once (they are
  the oldest work of their priority), so a killed worker's chunk moves again within about
  one lease TTL plus one reaper interval. While deciding, the reaper holds each chunk's
  lease itself, so a delivery that starts at that moment cannot be set back under its feet.
* Tasks past their deadline fail with reason ``deadline``; tasks not started by their
  queue TTL fail with reason ``expired``.
* Tasks left in planning or stitching with no lease held get their message sent again
  (at most once per few lease TTLs: a message may simply be waiting in a deep queue).
* Running tasks that hold a failed chunk fail with its reason (a chunk's dead letter fails
  its task in the same transaction; this catches rows split any other way).
* Running tasks whose chunks have all succeeded, yet which never moved on to stitching, get
  moved and their stitch sent.
* Pending clean-ups (files of cancelled, deleted and succeeded tasks) are retried until the
  bucket agrees, and retention removes old outputs and inputs.
* Webhook events delivered or given up more than FACEFLEET_WEBHOOK_KEEP_DAYS ago are pruned
  (``facefleet.events.retention``).
* Tasks left queued whose planning message was lost (the API died between the row and the
  message, a broker flush) get it again: at once when Redis lost its data, else after a
  quiet spell, and only while the planning queue holds fewer messages than such tasks.
  Lost chunk messages are the dispatcher's: it releases again what nobody started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from facefleet.events.retention import prune_events
from facefleet.fleet.leases import Lease
from facefleet.modes.distributed import PLANNING, Services
from facefleet.observability import metrics
from facefleet.records.db import Task, utcnow
from facefleet.records.states import TaskState
from facefleet.task.chunk_outcomes import fail_tasks_with_failed_chunks, stitch_finished
from facefleet.task.cleanup import clean_up, expire_inputs, expire_outputs, pending_cleanups
from facefleet.task.deadlines import enforce_deadlines
from facefleet.task.jobs import requeue_expired
from facefleet.task.orphans import sweep_late_writes, sweep_orphans
from facefleet.tenants.max_running import waiting_for_capacity

log = logging.getLogger(__name__)

RESEND_EVERY_TTLS = 5


def reap(
    svc: Services,
    enqueue_plan: Callable[[str], None],
    enqueue_stitch: Callable[[str], None],
    waiting_messages: Callable[[], Mapping[str, int]],
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
    metrics.LEASE_EXPIRED.inc(len(requeued))
    for task_id, index in requeued:
        log.warning(
            "chunk %d of task %s lost its worker: waits to be released again",
            index,
            task_id,
            extra={
                "task_id": task_id,
                "chunk": index,
                "request_id": state.request_of(task_id),
                "state": "queued",
                "error": "lease expired",
            },
        )
    for task_id, kind in enforce_deadlines(svc.ctx):
        log.warning("task %s failed: %s", task_id, kind)
        svc.state.cancel_flags.set(task_id)  # its running chunks stop at their next segment
    for task_id in fail_tasks_with_failed_chunks(svc.ctx):
        log.warning("task %s was still running with a failed chunk: failed", task_id)
        svc.state.cancel_flags.set(task_id)  # its other running chunks stop at their next segment
    stitched = stitch_finished(svc.ctx)
    for task_id in stitched:
        log.warning("task %s had every chunk done but no stitch: stitch sent", task_id)
        enqueue_stitch(task_id)
    sent = _release_waiting(svc, enqueue_plan)
    sent += _resend_abandoned(svc, enqueue_plan, enqueue_stitch)
    # Redis lost everything (a flush, a restart without persistence): a Redis broker lost its
    # messages with it, so work queued before that is sent again now, not after a quiet spell
    epoch, fresh = state.epoch_began()
    if fresh:
        log.warning("Redis holds no epoch marker (flushed or restarted): looking for lost messages now")
    sent += _resend_lost(svc, enqueue_plan, waiting_messages, lost_before=epoch)
    _tidy(svc)
    return len(requeued) + len(stitched) + sent


def _release_waiting(svc: Services, enqueue_plan: Callable[[str], None]) -> int:
    """Queued tasks held back by their tenant's ``max_running`` get their planning message
    once the tenant has room (at most once a lease TTL each: the planner decides again)."""
    sent = 0
    for task_id in waiting_for_capacity(svc.ctx):
        if svc.state.mark_once(f"released:{task_id}", svc.settings.lease_ttl_s):
            enqueue_plan(task_id)
            sent += 1
    return sent


def _tidy(svc: Services) -> None:
    """Clean-ups that are due, orphans and late writes (a few times per grace period), then
    retention."""
    for task_id in pending_cleanups(svc.ctx):
        clean_up(svc.ctx, task_id)
    settings = svc.settings
    grace = settings.orphan_grace_s
    every_s = max(settings.reaper_interval_s, grace / 4)
    # marked per pace: a worker of another grace (a rollout that changes it) keeps its own
    if svc.state.mark_once(f"orphan-sweep:{every_s:g}", every_s):
        sweep_orphans(svc.ctx, grace)
        sweep_late_writes(svc.ctx, grace, settings.keep_work_files)
    if settings.retention_output_days:
        expire_outputs(svc.ctx, settings.retention_output_days)
    if settings.retention_input_days:
        expire_inputs(svc.ctx, settings.retention_input_days)
    if settings.webhook_keep_days and svc.state.mark_once("webhook-prune", 60):
        pruned = prune_events(svc.sessions, settings.webhook_keep_days)
        if pruned:
            log.info(
                "pruned %d webhook events delivered or given up over %g days ago",
                pruned,
                settings.webhook_keep_days,
            )


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
        if _resend_once(svc, task_id, part):
            log.warning("task %s was left in %s: message sent again", task_id, task_state.value)
            send(task_id)
            sent += 1
    return sent


def _resend_lost(
    svc: Services,
    enqueue_plan: Callable[[str], None],
    waiting_messages: Callable[[], Mapping[str, int]],
    lost_before: float,
) -> int:
    """Queued tasks quiet for a few lease TTLs, or queued before Redis lost its data."""
    quiet_since = max(
        utcnow() - timedelta(seconds=svc.settings.lease_ttl_s * RESEND_EVERY_TTLS),
        datetime.fromtimestamp(lost_before, UTC),
    )
    queued_tasks = select(Task.id).where(Task.state == TaskState.QUEUED)
    with svc.sessions() as session:
        quiet_tasks = list(session.scalars(queued_tasks.where(Task.updated_at < quiet_since)))
        if not quiet_tasks:
            return 0
        tasks = session.scalar(select(func.count()).select_from(queued_tasks.subquery())) or 0
    if waiting_messages().get(PLANNING, 0) >= tasks:
        return 0
    sent = 0
    for task_id in quiet_tasks:
        if _resend_once(svc, task_id, "plan"):
            log.warning("task %s was left queued: planning message sent again", task_id)
            enqueue_plan(task_id)
            sent += 1
    return sent


def _resend_once(svc: Services, task_id: str, part: int | str) -> bool:
    """True when nobody holds ``part``'s lease and it was not resent in the last few TTLs."""
    if svc.state.is_leased(task_id, part):
        return False
    ttl = svc.settings.lease_ttl_s * RESEND_EVERY_TTLS
    return svc.state.mark_once(f"resent:{task_id}:{part}", ttl)
