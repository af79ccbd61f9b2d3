"""Chunks a broken host gives back. A fault of the worker rather than of the work (a full
scratch disk, a device that cannot load its models, refused credentials: see
``failures.local_fault``) must not spend the chunk's attempts: the broken worker is the free
one, so it would collect every retry. The chunk goes back to waiting at once, its attempt
returned, for another worker; the worker's breaker (``worker.breaker``) stops it taking more.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from facefleet.config.context import JobContext
from facefleet.records.db import Chunk, utcnow
from facefleet.records.states import ChunkState
from facefleet.task.chunk_outcomes import ChunkOutcome, give_back, why_stopped

log = logging.getLogger(__name__)


def given_back(
    ctx: JobContext, task_id: str, chunk_index: int, fault: str, lease_token: str | None = None
) -> ChunkOutcome:
    """The attempt met ``fault`` of this worker: the chunk waits again, its attempt returned."""
    if not give_back(ctx, task_id, chunk_index, lease_token, error=fault):
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
