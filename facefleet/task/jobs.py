"""The life of a task in the database: created, looked up, failed, cancelled, deleted,
retried, its lost chunks requeued; and the moves between states that planning
(``facefleet.task.planning``), the chunks and the stitch make too. The same functions serve the
embedded runner and the Celery workers; only the JobContext differs.

Every state change is a conditional UPDATE (``WHERE state IN <allowed sources>``), so two
processes racing on the same row cannot both win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from facefleet.config.context import JobContext
from facefleet.config.errors import InvalidTransition, TaskNotFound
from facefleet.config.options import JobOptions
from facefleet.events.outbox import task_event
from facefleet.observability import metrics
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, add_usage, after_commit, utcnow
from facefleet.records.states import (
    UNFINISHED_CHUNK_STATES,
    ChunkState,
    TaskState,
    chunk_sources,
    task_sources,
)
from facefleet.task.cleanup import Cleanup
from facefleet.tenants.quotas import reserve

log = logging.getLogger(__name__)


def move_task(session: Session, task_id: str, target: TaskState, **values: Any) -> bool:
    """Conditionally move a task to ``target``; False when its current state does not allow it."""
    result = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.state.in_(task_sources(target)))
        .values(state=target, updated_at=utcnow(), **values)
    )
    moved: bool = result.rowcount == 1  # type: ignore[attr-defined]
    if moved:
        task_moved(session, task_id, target, values.get("error"))
    return moved


def task_moved(session: Session, task_id: str, target: TaskState, error: str | None = None) -> None:
    """A line per state change; a task's end is timed from its submission."""
    extra: dict[str, Any] = {"task_id": task_id, "state": target.value}
    if error:
        extra["error"] = error
    turnaround: float | None = None
    if target.terminal:
        created = session.scalar(select(Task.created_at).where(Task.id == task_id))
        if created is not None:
            turnaround = max(0.0, (utcnow() - created).total_seconds())
            extra["latency_ms"] = round(turnaround * 1000)

    task_event(session, task_id, target)  # its webhook and live events, in this transaction

    def committed() -> None:  # observed and logged once the change holds
        if turnaround is not None:
            metrics.TASK_TURNAROUND.labels(target.value).observe(turnaround)
        level = logging.WARNING if target == TaskState.FAILED else logging.INFO
        log.log(level, "task %s: %s", task_id, target.value, extra=extra)

    after_commit(session, committed)


def move_chunks(session: Session, task_id: str, target: ChunkState, **values: Any) -> int:
    """Move the task's chunks that may go to ``target`` there (a stopped or cancelled task's
    chunks: only the unfinished ones)."""
    sources = chunk_sources(target)
    if target in (ChunkState.STOPPED, ChunkState.CANCELLED):
        sources = [s for s in sources if s in UNFINISHED_CHUNK_STATES]
    result = session.execute(
        update(Chunk)
        .where(Chunk.task_id == task_id, Chunk.state.in_(sources))
        .values(state=target, updated_at=utcnow(), **values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get_task(ctx: JobContext, task_id: str) -> Task:
    """The task; a deleted one (its clean-up may still be running) is not found."""
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or task.deleted_at is not None:
            raise TaskNotFound(task_id)
        return task


def fail_task(ctx: JobContext, task_id: str, reason: str, kind: str = "error") -> bool:
    """Fail the task with ``reason`` (``kind``: its class, e.g. ``deadline``); its unfinished
    chunks stop (state ``stopped``), so no row says ``running`` for work nobody does. Chunk
    rows are locked before the task's, the order every transaction that changes both keeps."""
    try:
        with ctx.sessions.begin() as session:
            if not fail_task_in(session, task_id, reason, kind):
                raise _Unchanged
    except _Unchanged:  # already ended: the chunks' update is rolled back with it
        return False
    return True


def fail_task_in(session: Session, task_id: str, reason: str, kind: str = "error") -> bool:
    """``fail_task`` in the caller's transaction, so that whatever made the task fail (a
    chunk's dead letter) commits with the failure or not at all: no crash between the two
    can leave a failed chunk under a running task. False: the task had ended already."""
    move_chunks(session, task_id, ChunkState.STOPPED, finished_at=utcnow())
    if not move_task(session, task_id, TaskState.FAILED, error=reason, reason=kind, finished_at=utcnow()):
        return False
    after_commit(session, lambda: log.warning("task %s failed: %s", task_id, reason))
    return True


class _Unchanged(Exception):
    pass


def patience_left(ctx: JobContext, task_id: str, fallback_since: datetime | None = None) -> bool:
    """The task's planning or stitching met an unavailable service: whether it may wait and
    try again, measured from the first such failure of this attempt (recorded on the task,
    cleared when the step ends and on a retry), never from an older moment such as when the
    chunks finished. Where the database itself does not answer, ``fallback_since`` (the mark
    as the step read it when it began), or now."""
    now = utcnow()
    try:
        with ctx.sessions.begin() as session:
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.infra_failing_since.is_(None))
                .values(infra_failing_since=now)
            )
            since = session.scalar(select(Task.infra_failing_since).where(Task.id == task_id)) or now
    except SQLAlchemyError:
        since = fallback_since or now
    return (now - since).total_seconds() <= ctx.infra_retry_s


def create_task(
    ctx: JobContext,
    *,
    target_key: str,
    source_keys: list[str],
    options: JobOptions,
    reference_key: str | None = None,
    task_id: str | None = None,
    idempotency_key: str | None = None,
    target_name: str | None = None,
    bytes_in: int = 0,
    tenant: str = keys.DEFAULT_TENANT,
    frames_total: int | None = None,
    batch_id: str | None = None,
) -> Task:
    """A new task in state ``queued``; its inputs must already be in the bucket
    (``frames_total``: what the submission's probe found, until the plan says exactly)."""
    now = utcnow()
    task = Task(
        created_at=now,
        frames_total=frames_total,
        deadline_at=now + timedelta(seconds=options.deadline_s) if options.deadline_s else None,
        queue_expires_at=now + timedelta(seconds=options.queue_ttl_s) if options.queue_ttl_s else None,
        tenant=tenant,
        target_key=target_key,
        target_name=target_name,
        source_keys=list(source_keys),
        reference_key=reference_key,
        options=options.model_dump(mode="json"),
        priority=options.priority,
        idempotency_key=idempotency_key,
        bytes_in=bytes_in,
        # decided once: resumes and retries mark (or not) as the first attempt did
        provenance={"watermark": ctx.watermark and bool(options.processors)},
        batch_id=batch_id,
    )
    if task_id is not None:
        task.id = task_id
    with ctx.sessions.begin() as session:
        reserve(session, tenant, frames_total or 0)  # the tenant's quotas, exactly, under its lock
        session.add(task)
        add_usage(session, tenant, tasks=1, bytes_in=bytes_in)
    return task


def pending_chunks(session: Session, task_id: str) -> list[int]:
    """The indices of the task's unfinished chunks, in order."""
    rows = session.scalars(
        select(Chunk.index)
        .where(Chunk.task_id == task_id, Chunk.state.in_(UNFINISHED_CHUNK_STATES))
        .order_by(Chunk.index)
    )
    return list(rows)


# ---------------------------------------------------------------------------- user actions


def cancel_task(ctx: JobContext, task_id: str) -> Task:
    """Cancel a task that has not finished; running chunks stop at their next segment. Its
    files go by its clean-up (recorded here, done when no holder can still write)."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None or task.deleted_at is not None:
            raise TaskNotFound(task_id)
        move_chunks(session, task_id, ChunkState.CANCELLED, finished_at=utcnow())
        if not move_task(
            session, task_id, TaskState.CANCELLED, finished_at=utcnow(), cleanup=Cleanup.ALL.value
        ):
            raise InvalidTransition(f"task {task_id} is {task.state.value} and cannot be cancelled")
    return get_task(ctx, task_id)


def delete_task(ctx: JobContext, task_id: str) -> bool:
    """Delete a task in any state (an unfinished one is cancelled first): from now on it is
    not found; its files and rows go by its clean-up. Returns whether it was running."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None or task.deleted_at is not None:
            raise TaskNotFound(task_id)
        was_running = not task.state.terminal
        if was_running:
            move_chunks(session, task_id, ChunkState.CANCELLED, finished_at=utcnow())
            move_task(session, task_id, TaskState.CANCELLED, finished_at=utcnow())
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(deleted_at=utcnow(), cleanup=Cleanup.DELETE.value, idempotency_key=None)
        )
    return was_running


@dataclass(frozen=True)
class RetryPlan:
    """What a retried task needs sent: a plan message, chunk messages, or a stitch message."""

    step: TaskState  # QUEUED (plan again), RUNNING (the chunks below) or STITCHING
    chunks: tuple[int, ...] = ()


def retry_task(ctx: JobContext, task_id: str) -> RetryPlan:
    """Run a failed task again from where it failed: the plan if it never got one, else its
    unfinished chunks from their checkpoints, else (every chunk succeeded) the stitch."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if task.deleted_at is not None:
            raise TaskNotFound(task_id)
        if task.state != TaskState.FAILED:
            raise InvalidTransition(f"task {task_id} is {task.state.value}; only failed tasks can be retried")
        if task.inputs_expired_at is not None:
            raise InvalidTransition(f"task {task_id} cannot be retried: its inputs were removed (retention)")
        states = list(session.scalars(select(Chunk.state).where(Chunk.task_id == task_id)))
        if not states:
            step = TaskState.QUEUED
        elif all(state == ChunkState.SUCCEEDED for state in states):
            step = TaskState.STITCHING
        else:
            step = TaskState.RUNNING
        if step == TaskState.RUNNING:  # chunk rows first, then the task's (the lock order)
            session.execute(
                update(Chunk)
                .where(Chunk.task_id == task_id, Chunk.state != ChunkState.SUCCEEDED)
                .values(  # a retry is a new budget: attempts, lost workers, infrastructure marks
                    state=ChunkState.QUEUED,
                    attempts=0,
                    lost=0,
                    infra_failing_since=None,
                    error=None,
                    finished_at=None,
                    released_at=None,
                    not_before=None,
                    updated_at=utcnow(),
                )
            )
        options = JobOptions.model_validate(task.options)
        deadline = utcnow() + timedelta(seconds=options.deadline_s) if options.deadline_s else None
        if not move_task(
            session,
            task_id,
            step,
            error=None,
            reason=None,
            finished_at=None,
            attempts=Task.attempts + 1,
            infra_failing_since=None,
            deadline_at=deadline,
            queue_expires_at=None,
        ):
            raise InvalidTransition(f"task {task_id} changed meanwhile; look it up again")
        if step != TaskState.RUNNING:
            return RetryPlan(step)
        return RetryPlan(step, tuple(pending_chunks(session, task_id)))


def resume_interrupted(ctx: JobContext, task_id: str) -> int:
    """The embedded runner, holding the job's lock, resumes a job whose last run was
    interrupted (Ctrl-C, a closed laptop, a kill): chunks that run left ``running`` go back to
    waiting with their attempt given back. An interrupted run is the user's own stop, not a
    lost worker, so it spends neither attempts nor the lost-worker budget. Their progress
    goes back to the frames of the segments they stored (what the rerun resumes from), so a
    progress bar starts where the work really stands and never moves back."""
    with ctx.sessions.begin() as session:
        options = session.scalar(select(Task.options).where(Task.id == task_id)) or {}
        per_segment = int(options.get("segment_frames", JobOptions().segment_frames))
        stored, frames = Chunk.segments_done * per_segment, Chunk.frame_end - Chunk.frame_start
        result = session.execute(
            update(Chunk)
            .where(Chunk.task_id == task_id, Chunk.state == ChunkState.RUNNING)
            .values(
                state=ChunkState.QUEUED,
                attempts=case((Chunk.attempts > 0, Chunk.attempts - 1), else_=0),
                frames_done=case((stored < frames, stored), else_=frames),
                updated_at=utcnow(),
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def requeue_expired(ctx: JobContext, chunk_is_leased: Callable[[str, int], bool]) -> list[tuple[str, int]]:
    """Running chunks of running tasks whose lease is gone go back to waiting (``queued``,
    not released), to be released again by the dispatcher; returns them."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Chunk.task_id, Chunk.index)
            .join(Task, Task.id == Chunk.task_id)
            .where(Chunk.state == ChunkState.RUNNING, Task.state == TaskState.RUNNING)
        ).all()
    expired = [(task_id, index) for task_id, index in rows if not chunk_is_leased(task_id, index)]
    requeued = []
    for task_id, index in expired:
        with ctx.sessions.begin() as session:
            result = session.execute(
                update(Chunk)
                .where(Chunk.task_id == task_id, Chunk.index == index, Chunk.state == ChunkState.RUNNING)
                .values(  # the start that was lost gives its attempt back: it counts as lost
                    state=ChunkState.QUEUED,
                    lease_token=None,  # fencing: the lost holder can no longer end the chunk
                    released_at=None,  # waits to be released again (first: it is the oldest)
                    lost=Chunk.lost + 1,
                    attempts=case((Chunk.attempts > 0, Chunk.attempts - 1), else_=0),
                    updated_at=utcnow(),
                )
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                requeued.append((task_id, index))
    return requeued
