"""Checkpoints (how many segments of a chunk are safely stored) and live progress.

A checkpoint is written only after the segment it names is in the bucket, so it never points
at missing bytes. It is an accelerator, not the truth: when a store has lost it, the resume
point is recovered from the segments listed in the bucket (``facefleet.task.segments.resume_point``).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from facefleet.records.db import Chunk


class Checkpoints(Protocol):
    def load(self, task_id: str, chunk_index: int) -> int | None:
        """Segments of the chunk known to be stored, or None when this store does not know."""

    def save(self, task_id: str, chunk_index: int, segments_done: int, frames_done: int) -> None: ...

    def report_progress(self, task_id: str, chunk_index: int, frames_done: int) -> None:
        """Frames of the chunk processed so far (cheap; called often)."""

    def progress(self, task_id: str) -> dict[int, int]:
        """Live frames done per chunk index."""

    def clear(self, task_id: str) -> None: ...


class SqlCheckpoints:
    """Checkpoints in the chunks table itself: the embedded mode has no Redis."""

    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def load(self, task_id: str, chunk_index: int) -> int | None:
        with self._sessions() as session:
            return session.scalar(
                select(Chunk.segments_done).where(Chunk.task_id == task_id, Chunk.index == chunk_index)
            )

    def save(self, task_id: str, chunk_index: int, segments_done: int, frames_done: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Chunk)
                .where(Chunk.task_id == task_id, Chunk.index == chunk_index)
                .values(segments_done=segments_done, frames_done=frames_done)
            )

    def report_progress(self, task_id: str, chunk_index: int, frames_done: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Chunk)
                .where(Chunk.task_id == task_id, Chunk.index == chunk_index)
                .values(frames_done=frames_done)
            )

    def progress(self, task_id: str) -> dict[int, int]:
        with self._sessions() as session:
            rows = session.execute(select(Chunk.index, Chunk.frames_done).where(Chunk.task_id == task_id))
            return {index: done for index, done in rows}

    def clear(self, task_id: str) -> None:
        """Nothing to clear: the rows go with the task."""
