"""Where a task stands: frames done (live, from the checkpoint store), percent, fps, ETA."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from facefleet.config.context import JobContext
from facefleet.config.errors import TaskNotFound
from facefleet.records.db import Chunk, Task, utcnow
from facefleet.records.states import ChunkState, TaskState


def task_progress(ctx: JobContext, task_id: str, task: Task | None = None) -> dict[str, Any]:
    """Frames done (live, from the checkpoint store), percent, average fps and ETA (``task``:
    the row, when the caller has it already)."""
    with ctx.read_sessions() as session:
        task = task or session.get(Task, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        chunks = session.execute(
            select(Chunk.index, Chunk.state, Chunk.frame_start, Chunk.frame_end, Chunk.frames_done).where(
                Chunk.task_id == task_id
            )
        ).all()
    live = ctx.checkpoints.progress(task_id) if task.state == TaskState.RUNNING else {}
    done = sum(
        end - start if state == ChunkState.SUCCEEDED else max(frames_done, live.get(index, 0))
        for index, state, start, end, frames_done in chunks
    )
    total = task.frames_total or 0
    if task.state == TaskState.SUCCEEDED:
        done = total
    elapsed = ((task.finished_at or utcnow()) - task.started_at).total_seconds() if task.started_at else 0.0
    fps = done / elapsed if elapsed > 0 else 0.0
    return {
        "frames_done": done,
        "frames_total": total,
        "percent": round(100.0 * done / total, 2) if total else 0.0,
        "fps": round(fps, 2),
        "eta_s": round((total - done) / fps, 1) if fps > 0 and not task.state.terminal else None,
        "chunks": dict(Counter(state.value for _, state, _, _, _ in chunks)),
    }
