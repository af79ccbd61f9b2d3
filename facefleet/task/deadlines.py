"""Deadlines (``deadline_s``: done by then) and queue expiry (``queue_ttl_s``: started by
then), enforced by the reaper: a task past either fails with the reason ``deadline`` or
``expired``, and its chunks stop (``fail_task``), so nothing stays running or leased."""

from __future__ import annotations

from sqlalchemy import and_, exists, select

from facefleet.config.context import JobContext
from facefleet.records.db import Chunk, Task, utcnow
from facefleet.records.states import TaskState
from facefleet.task.jobs import fail_task

UNFINISHED = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING, TaskState.STITCHING)
NOT_STARTED = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING)


def enforce_deadlines(ctx: JobContext) -> list[tuple[str, str]]:
    """Fail the tasks past their deadline or queue TTL; returns (task id, reason) of each."""
    now = utcnow()
    started = exists().where(and_(Chunk.task_id == Task.id, Chunk.started_at.is_not(None)))
    with ctx.sessions() as session:
        late = session.execute(
            select(Task.id, Task.created_at, Task.deadline_at).where(
                Task.state.in_(UNFINISHED), Task.deadline_at.is_not(None), Task.deadline_at < now
            )
        ).all()
        expired = session.execute(
            select(Task.id, Task.created_at, Task.queue_expires_at).where(
                Task.state.in_(NOT_STARTED),
                Task.queue_expires_at.is_not(None),
                Task.queue_expires_at < now,
                ~started,
            )
        ).all()
    ended = []
    for task_id, created, deadline in late:
        allowed = (deadline - created).total_seconds()
        if fail_task(ctx, task_id, f"deadline: not done within {allowed:g} s of submission", kind="deadline"):
            ended.append((task_id, "deadline"))
    for task_id, created, expires in expired:
        if any(task_id == done for done, _ in ended):
            continue
        allowed = (expires - created).total_seconds()
        if fail_task(
            ctx, task_id, f"expired: not started within {allowed:g} s of submission", kind="expired"
        ):
            ended.append((task_id, "expired"))
    return ended
