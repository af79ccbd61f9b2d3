"""The outbox: what must leave the system because of a state change (webhook events, live
events) is written in the same transaction as that change, so no crash between the two can
lose it or send it for a change that did not happen.

* ``task_event``: called by every task state change (``facefleet.task.jobs.task_moved``); writes
  the task's event when its options ask for it, and the batch's ``batch_completed`` when it
  was the batch's last unfinished item (the batch's row is locked, so two items ending at
  once write it once).
* ``progress_event``: called with each stored segment's accounting; at most one ``progress``
  event per PROGRESS_EVERY_S per task (FACEFLEET_WEBHOOK_PROGRESS_EVERY_S, the session may
  carry another) (the task's row is already locked by that transaction).
* Live events (SSE) are published to Redis after the commit, by the publisher the session
  carries (``session.info["publish"]``, set by the distributed mode; none embedded).

Delivery is ``facefleet.events.webhooks``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facefleet.config.options import DEFAULT_WEBHOOK_EVENTS
from facefleet.records.db import Task, after_commit, utcnow
from facefleet.records.event_tables import Batch, WebhookEvent
from facefleet.records.states import TERMINAL_TASK_STATES, TaskState
from facefleet.records.task_view import iso, task_summary

PROGRESS_EVERY_S = 10.0
# how long an event is retried (FACEFLEET_WEBHOOK_RETRY_S); the session may carry another
DEFAULT_RETRY_S = 24 * 3600.0
PUBLISH = "facefleet.publish"  # session.info: (channel kind, id, event dict) -> None
RETRY_S = "facefleet.webhook_retry_s"
PROGRESS_EVERY = "facefleet.webhook_progress_every_s"

EVENT_OF_STATE = {
    TaskState.PLANNING: "started",
    TaskState.SUCCEEDED: "succeeded",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
}

Publish = Callable[[str, str, dict[str, Any]], None]


def task_event(session: Session, task_id: str, target: TaskState) -> None:
    """The outbox rows and live events of ``task_id`` having moved to ``target`` (in the
    transaction of that move)."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:
        return
    summary = task_summary(task)
    _publish(session, "task", task_id, {"event": "state", "state": target.value, "task": summary})
    event = EVENT_OF_STATE.get(target)
    if event and event in _wanted(task.options):
        _write(session, task.tenant, event, task.options["webhook_url"], summary, task_id=task_id)
    if task.batch_id is not None and target in TERMINAL_TASK_STATES:
        complete_if_done(session, task.batch_id)


def progress_event(session: Session, task_id: str) -> None:
    """A ``progress`` event, if the task asks for them and its last is PROGRESS_EVERY_S old."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:
        return
    progress = {"frames_done": task.frames_processed, "frames_total": task.frames_total or 0}
    _publish(session, "task", task_id, {"event": "progress", "state": task.state.value, "progress": progress})
    if "progress" not in _wanted(task.options):
        return
    now = utcnow()
    last = task.progress_event_at
    if last is not None and (now - last).total_seconds() < session.info.get(PROGRESS_EVERY, PROGRESS_EVERY_S):
        return
    session.execute(update(Task).where(Task.id == task_id).values(progress_event_at=now))
    body = {**task_summary(task), "progress": progress}
    _write(session, task.tenant, "progress", task.options["webhook_url"], body, task_id=task_id)


def batch_view(session: Session, batch: Batch) -> dict[str, Any]:
    """A batch as users see it: its items' counts per state, frames done of the total,
    percent and ETA (from the batch's pace so far)."""
    rows = session.execute(
        select(
            Task.state,
            func.count(),
            func.coalesce(func.sum(Task.frames_total), 0),
            func.coalesce(func.sum(Task.frames_processed), 0),
        )
        .where(Task.batch_id == batch.id, Task.deleted_at.is_(None))
        .group_by(Task.state)
    ).all()
    counts = {state.value: 0 for state in TaskState}
    total = done = 0
    for state, count, frames_total, frames_done in rows:
        counts[state.value] = int(count)
        total += int(frames_total or 0)
        done += (
            int(frames_total or 0)
            if state == TaskState.SUCCEEDED
            else min(int(frames_done or 0), int(frames_total or 0))
        )
    finished = sum(counts[s.value] for s in TERMINAL_TASK_STATES)
    elapsed = ((batch.completed_at or utcnow()) - batch.created_at).total_seconds()
    pace = done / elapsed if elapsed > 0 else 0.0
    return {
        "id": batch.id,
        "tenant": batch.tenant,
        "state": "completed" if batch.completed_at else "running",
        "items": batch.items,
        "counts": counts,
        "finished": finished,
        "progress": {
            "frames_done": done,
            "frames_total": total,
            "percent": round(100.0 * done / total, 2) if total else 0.0,
            "eta_s": round((total - done) / pace, 1) if pace > 0 and not batch.completed_at else None,
        },
        "options": batch.options,
        "created_at": iso(batch.created_at),
        "completed_at": iso(batch.completed_at),
    }


def complete_if_done(session: Session, batch_id: str) -> None:
    """The batch completes (``batch_completed``) when it is sealed and no item is unfinished;
    its row is locked, so two items ending at once (or the seal) complete it once."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.sealed_at is None or batch.completed_at is not None:
        return
    unfinished = session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.batch_id == batch_id, Task.state.not_in(list(TERMINAL_TASK_STATES)))
    )
    if unfinished:
        return
    batch.completed_at = utcnow()
    session.flush()
    view = batch_view(session, batch)
    _publish(session, "batch", batch_id, {"event": "batch_completed", "batch": view})
    if "batch_completed" in _wanted(batch.options):
        _write(
            session, batch.tenant, "batch_completed", batch.options["webhook_url"], view, batch_id=batch_id
        )


def _wanted(options: dict[str, Any] | None) -> frozenset[str]:
    if not options or not options.get("webhook_url"):
        return frozenset()
    events = options.get("webhook_events")
    return frozenset(events if events is not None else DEFAULT_WEBHOOK_EVENTS)


def _write(
    session: Session,
    tenant: str,
    event: str,
    url: str,
    data: dict[str, Any],
    *,
    task_id: str | None = None,
    batch_id: str | None = None,
) -> None:
    now = utcnow()
    kind = "batch.completed" if event == "batch_completed" else f"task.{event}"
    session.add(
        WebhookEvent(
            tenant=tenant,
            task_id=task_id,
            batch_id=batch_id,
            event=event,
            url=url,
            payload={"type": kind, "event": event, "timestamp": iso(now), "data": data},
            created_at=now,
            next_attempt_at=now,
            retry_until=now + timedelta(seconds=session.info.get(RETRY_S, DEFAULT_RETRY_S)),
            attempts=0,
        )
    )


def _publish(session: Session, kind: str, subject: str, event: dict[str, Any]) -> None:
    publish: Publish | None = session.info.get(PUBLISH)
    if publish is not None:
        after_commit(session, lambda: publish(kind, subject, event))
