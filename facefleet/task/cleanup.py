"""Removing a task's files, never forgotten.

A state change that makes files unneeded (success, cancel, delete, retention) records what
to remove in the task's ``cleanup`` column in the same transaction as the change. Whoever
gets there first (the API, the stitcher, the reaper's next pass) removes the files and then
clears the column, so a storage error only delays the removal: the reaper retries it until
the bucket agrees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update

from facefleet.config.context import JobContext
from facefleet.records import keys
from facefleet.records.db import Task, utcnow
from facefleet.records.states import TaskState
from facefleet.storage.base import StorageError

log = logging.getLogger(__name__)


class Cleanup(StrEnum):
    WORK = "work"  # succeeded: everything but the output (inputs, plan, segments)
    ALL = "all"  # cancelled: every file
    DELETE = "delete"  # deleted: every file, then the task's rows (usage rows stay)


def clean_up(ctx: JobContext, task_id: str, busy: Callable[[str], bool] | None = None) -> bool:
    """Do the task's pending clean-up; True when nothing is left to do. While ``busy(task_id)``
    (a chunk or stitch holder may still store something) files that must all go are left
    for a later pass."""
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or task.cleanup is None:
            return True
        what, task_keys = Cleanup(task.cleanup), keys.of(task)
    if what != Cleanup.WORK and (busy or ctx.task_busy)(task_id):
        return False
    try:
        if what == Cleanup.WORK:
            ctx.storage.delete_prefix(task_keys.work_prefix)
            ctx.storage.delete_prefix(task_keys.input_prefix)
        else:
            ctx.storage.delete_prefix(task_keys.prefix)
    except StorageError as exc:
        log.warning("clean-up of task %s put off (%s): the reaper tries again", task_id, exc)
        return False
    ctx.checkpoints.clear(task_id)
    with ctx.sessions.begin() as session:
        if what == Cleanup.DELETE:
            session.execute(
                delete(Task).where(Task.id == task_id, Task.cleanup == what.value)
            )  # chunks cascade
        else:  # unless the task asked for more meanwhile (deleted while its work was cleaned)
            session.execute(
                update(Task).where(Task.id == task_id, Task.cleanup == what.value).values(cleanup=None)
            )
    log.info("task %s: %s clean-up done", task_id, what.value)
    return True


def pending_cleanups(ctx: JobContext, limit: int = 100) -> list[str]:
    with ctx.sessions() as session:
        rows = session.scalars(
            select(Task.id).where(Task.cleanup.is_not(None)).order_by(Task.updated_at).limit(limit)
        )
        return list(rows)


def expire_outputs(ctx: JobContext, older_than_days: float, limit: int = 100) -> int:
    """Retention: remove the outputs of tasks that succeeded more than ``older_than_days``
    ago. A task keeps its row (state, usage) and says when its output went."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with ctx.sessions() as session:
        rows = session.execute(
            select(Task.id, Task.output_key)
            .where(
                Task.state == TaskState.SUCCEEDED,
                Task.output_key.is_not(None),
                Task.finished_at < cutoff,
                Task.deleted_at.is_(None),
            )
            .limit(limit)
        ).all()
    removed = 0
    for task_id, output_key in rows:
        try:
            ctx.storage.delete(output_key)
        except StorageError as exc:
            log.warning("retention: output of task %s not removed yet (%s)", task_id, exc)
            continue
        with ctx.sessions.begin() as session:
            session.execute(
                update(Task).where(Task.id == task_id).values(output_key=None, output_expired_at=utcnow())
            )
        log.info("retention: output of task %s removed", task_id)
        removed += 1
    return removed


def expire_inputs(ctx: JobContext, older_than_days: float, limit: int = 100) -> int:
    """Retention: remove the inputs and work files of tasks that ended more than
    ``older_than_days`` ago (a failed task can then no longer be retried)."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    with ctx.sessions() as session:
        rows = session.execute(
            select(Task.id, Task.tenant)
            .where(
                Task.state.in_([TaskState.SUCCEEDED, TaskState.FAILED]),
                Task.finished_at < cutoff,
                Task.inputs_expired_at.is_(None),
                Task.deleted_at.is_(None),
            )
            .limit(limit)
        ).all()
    removed = 0
    for task_id, tenant in rows:
        task_keys = keys.TaskKeys(task_id, tenant)
        try:
            ctx.storage.delete_prefix(task_keys.input_prefix)
            ctx.storage.delete_prefix(task_keys.work_prefix)
        except StorageError as exc:
            log.warning("retention: inputs of task %s not removed yet (%s)", task_id, exc)
            continue
        with ctx.sessions.begin() as session:
            session.execute(update(Task).where(Task.id == task_id).values(inputs_expired_at=utcnow()))
        removed += 1
    return removed
