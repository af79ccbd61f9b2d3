"""Bucket prefixes nothing else removes.

* A submission stores its inputs before its task row exists: an API killed mid-upload
  leaves objects with no row. So a submission records a pending upload (a row of its own,
  committed before the first byte is stored) and clears it once the task row commits.
* A late writer (a holder that lost its lease, a segment stored after the clean-up or after
  a DELETE) recreates objects under a task's prefix after its files were removed.

The reaper's sweep removes every task prefix in the bucket that has no task row and no
pending upload younger than ``grace_s``; and removes again, for a while after they ended,
the work files of succeeded tasks and every file of cancelled ones, so that what a late
writer stored goes too. The bucket is listed before the database is read: a submission that
starts meanwhile has its pending upload recorded before it stores anything.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from facefleet.config.context import JobContext
from facefleet.records import keys
from facefleet.records.db import PendingUpload, Task, utcnow
from facefleet.records.states import TaskState
from facefleet.storage.base import StorageError

log = logging.getLogger(__name__)

TASKS = "tasks/"
TENANTS = "tenants/"
RESWEEP_GRACES = 4  # ended tasks' files are removed again for this many grace periods


def record_pending(ctx: JobContext, task_keys: keys.TaskKeys) -> None:
    """Before the submission stores anything under the task's prefix."""
    with ctx.sessions.begin() as session:
        session.add(PendingUpload(task_id=task_keys.task_id, prefix=task_keys.prefix))


def clear_pending(ctx: JobContext, task_id: str) -> None:
    """Once the task's row has committed, or the refused submission's files are gone."""
    with ctx.sessions.begin() as session:
        session.execute(delete(PendingUpload).where(PendingUpload.task_id == task_id))


def task_prefixes(ctx: JobContext) -> dict[str, str]:
    """Every task prefix in the bucket: task id -> prefix (both layouts, with tenants)."""
    found = {_last(p): p for p in ctx.storage.folders(TASKS)}
    for tenant in ctx.storage.folders(TENANTS):
        found.update({_last(p): p for p in ctx.storage.folders(f"{tenant}{TASKS}")})
    return found


def sweep_orphans(ctx: JobContext, grace_s: float) -> int:
    """Remove the prefixes of tasks with no row and no recent pending upload (and expired
    pending uploads); returns how many prefixes went."""
    prefixes = task_prefixes(ctx)  # listed first: see the module's docstring
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with ctx.sessions.begin() as session:
        session.execute(delete(PendingUpload).where(PendingUpload.created_at < cutoff))
        known = set(session.scalars(select(Task.id).where(Task.id.in_(prefixes))))
        known |= set(
            session.scalars(select(PendingUpload.task_id).where(PendingUpload.task_id.in_(prefixes)))
        )
    removed = 0
    for task_id, prefix in prefixes.items():
        if task_id not in known and _removed(ctx, prefix, uploads=True):
            log.warning("orphaned files of task %s removed (no task row, no upload under way)", task_id)
            removed += 1
    return removed


def sweep_late_writes(ctx: JobContext, grace_s: float, keep_work_files: bool) -> int:
    """Remove again what ended tasks should no longer hold (a late writer's objects): the
    work files and inputs of tasks that succeeded, every file of cancelled ones, for
    ``RESWEEP_GRACES`` grace periods after they ended, once their clean-up is done."""
    now = utcnow()
    states = [TaskState.CANCELLED] if keep_work_files else [TaskState.CANCELLED, TaskState.SUCCEEDED]
    with ctx.sessions() as session:
        rows = session.execute(
            select(Task.id, Task.tenant, Task.state).where(
                Task.state.in_(states),
                Task.cleanup.is_(None),
                Task.finished_at > now - timedelta(seconds=grace_s * RESWEEP_GRACES),
                Task.finished_at < now - timedelta(seconds=grace_s),
            )
        ).all()
    removed = 0
    for task_id, tenant, state in rows:
        task_keys = keys.TaskKeys(task_id, tenant)
        if state == TaskState.CANCELLED:
            removed += _removed(ctx, task_keys.prefix)
        else:
            removed += _removed(ctx, task_keys.work_prefix) + _removed(ctx, task_keys.input_prefix)
    return removed


def _removed(ctx: JobContext, prefix: str, *, uploads: bool = False) -> bool:
    """Whether ``prefix`` held objects, now removed (a storage error: the next sweep); with
    ``uploads``, its unfinished uploads go too, objects or not (a killed upload's parts)."""
    try:
        held = bool(ctx.storage.list(prefix))
        if held or uploads:
            ctx.storage.delete_prefix(prefix)
    except StorageError as exc:
        log.warning("sweep of %s put off (%s)", prefix, exc)
        return False
    return held


def _last(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]
