"""Frames stored, counted in usage once, however an attempt ends.

Each stored segment's frames are counted at once (an attempt that dies later still has its
work accounted for), in one transaction with the chunk's own count of what it accounted.
When that transaction fails after the segment's checkpoint (the database went away), a
resumed chunk never stores that segment again, so nothing would count it: the chunk's finish
settles the difference between its frames and what it accounted.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from facefleet.config.context import JobContext
from facefleet.events.outbox import progress_event
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, add_usage


def account_segment(ctx: JobContext, task_keys: keys.TaskKeys, chunk_index: int, frames: int) -> None:
    """A stored segment's ``frames``: the task's and its tenant's usage, and the chunk's count.
    The chunk's mark of failing services goes too: they work again, so a blip much later
    starts a new wait instead of counting from the old one."""
    with ctx.sessions.begin() as session:  # the chunk's row before the task's: the lock order
        session.execute(
            update(Chunk)
            .where(Chunk.task_id == task_keys.task_id, Chunk.index == chunk_index)
            .values(frames_accounted=Chunk.frames_accounted + frames, infra_failing_since=None)
        )
        _add(session, task_keys, frames)


def settle_frames(ctx: JobContext, task_keys: keys.TaskKeys, chunk_index: int) -> int:
    """At the chunk's finish: frames it stored but never counted are counted now, once (the
    chunk's row is locked, so two settlers count them once). Returns how many."""
    with ctx.sessions.begin() as session:
        chunk = session.scalar(
            select(Chunk)
            .where(Chunk.task_id == task_keys.task_id, Chunk.index == chunk_index)
            .with_for_update()
        )
        missing = 0 if chunk is None else chunk.frame_count - chunk.frames_accounted
        if chunk is None or missing <= 0:
            return 0
        chunk.frames_accounted += missing
        _add(session, task_keys, missing)
    return missing


def _add(session: Session, task_keys: keys.TaskKeys, frames: int) -> None:
    session.execute(
        update(Task)
        .where(Task.id == task_keys.task_id)
        .values(frames_processed=Task.frames_processed + frames)
    )
    add_usage(session, task_keys.tenant, frames=frames)
    progress_event(session, task_keys.task_id)  # the task's row is locked: one writer at a time
