"""Chunks a broken host gives back. A fault of the worker rather than of the work (a full
scratch disk, a device that cannot load its models, refused credentials: see
``failures.local_fault``) must not spend the chunk's attempts: the broken worker is the free
one, so it would collect every retry. The chunk goes back to waiting at once, its attempt
returned, for another worker; the worker's breaker (``worker.breaker``) stops it taking more.
"""

from __future__ import annotations

import logging

from sqlalchemy import case, exists, select, update

from facefleet.chunk_outcomes import ChunkOutcome, why_stopped
from facefleet.context import JobContext
from facefleet.db import Chunk, Task, utcnow
from facefleet.states import ChunkState, TaskState

log = logging.getLogger(__name__)


def given_back(ctx: JobContext, task_id: str, chunk_index: int, fault: str) -> ChunkOutcome:
    """The attempt met ``fault`` of this worker: the chunk, still ours and its task running,
    waits again with no backoff and its attempt returned (what it stored stays)."""
    running_task = exists().where(Task.id == task_id, Task.state == TaskState.RUNNING)
    with ctx.sessions.begin() as session:
        moved = session.execute(
            update(Chunk)
            .where(
                Chunk.task_id == task_id,
                Chunk.index == chunk_index,
                Chunk.state == ChunkState.RUNNING,
                Chunk.worker == ctx.worker_name,
                running_task,
            )
            .values(
                state=ChunkState.QUEUED,
                attempts=case((Chunk.attempts > 0, Chunk.attempts - 1), else_=0),
                error=fault,
                released_at=None,
                not_before=None,
                updated_at=utcnow(),
            )
        )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return why_stopped(ctx, task_id)
    log.warning(
        "chunk %d of task %s: given back, this worker is at fault (no attempt spent)",
        chunk_index,
        task_id,
        extra={"state": ChunkState.QUEUED.value, "error": fault},
    )
    return ChunkOutcome.LOCAL_FAULT


def attempt_returned(ctx: JobContext, task_id: str, chunk_index: int) -> bool:
    """The failure that tripped a worker's breaker was the worker's, as it turned out: the
    chunk, if still waiting for its retry, gets that attempt back."""
    with ctx.sessions.begin() as session:
        moved = session.execute(
            update(Chunk)
            .where(
                Chunk.task_id == task_id,
                Chunk.index == chunk_index,
                Chunk.state == ChunkState.QUEUED,
                Chunk.attempts > 0,
            )
            .values(attempts=Chunk.attempts - 1, not_before=None, updated_at=utcnow())
        )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def chunk_error(ctx: JobContext, task_id: str, chunk_index: int) -> str:
    """The chunk's last error (a given-back chunk's: the fault of the worker that had it)."""
    with ctx.sessions() as session:
        error = session.scalar(
            select(Chunk.error).where(Chunk.task_id == task_id, Chunk.index == chunk_index)
        )
    return error or ""
