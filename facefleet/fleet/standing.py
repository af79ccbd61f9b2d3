"""Where a task stands in the queue (its position and an ETA from measured throughput), the
phase it is in, and the fleet's backlog (admission control): read by the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from facefleet.records.db import Chunk, Task
from facefleet.records.states import TaskState

PHASES = ("probing", "planning", "processing", "stitching", "uploading")
UNFINISHED = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING, TaskState.STITCHING)
_NOT_PROCESSING = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING)
_started = exists().where(and_(Chunk.task_id == Task.id, Chunk.started_at.is_not(None)))
# tasks whose frames nobody has started on yet: what the queue is made of
WAITING = and_(Task.state.in_(_NOT_PROCESSING), Task.deleted_at.is_(None), ~_started)
_remaining = func.coalesce(Task.frames_total, 0) - Task.frames_processed


@dataclass(frozen=True)
class Fleet:
    """What the workers can do: chunk slots announced, frames per second one slot does
    (None until measured)."""

    slots: int
    fps_per_slot: float | None

    def fps(self, nominal_per_slot: float | None = None) -> float | None:
        per_slot = self.fps_per_slot or nominal_per_slot
        return per_slot * self.slots if per_slot and self.slots else None


def is_waiting(session: Session, task_id: str) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Task).where(Task.id == task_id, WAITING)))


def queue_standing(session: Session, task: Task, fleet: Fleet) -> dict[str, float | int | None] | None:
    """``{position, eta_s}`` of a task that waits (None once its frames are being processed):
    position counts the waiting tasks that go first (higher priority, or the same priority
    and older: counted from 0, so the head of the queue is 0); eta_s is the frames of those
    tasks and of the work in progress over the fleet's measured throughput."""
    if not is_waiting(session, task.id):
        return None
    ahead = and_(
        WAITING,
        Task.id != task.id,
        or_(
            Task.priority > task.priority,
            and_(
                Task.priority == task.priority,
                or_(
                    Task.created_at < task.created_at,
                    and_(Task.created_at == task.created_at, Task.id < task.id),
                ),
            ),
        ),
    )
    position, frames_ahead = session.execute(
        select(func.count(), func.coalesce(func.sum(_remaining), 0)).select_from(Task).where(ahead)
    ).one()
    in_progress = session.scalar(
        select(func.coalesce(func.sum(_remaining), 0)).where(
            Task.state.in_([TaskState.RUNNING, TaskState.STITCHING]), Task.deleted_at.is_(None), ~WAITING
        )
    )
    fps = fleet.fps()
    frames = int(frames_ahead or 0) + int(in_progress or 0) + max(0, (task.frames_total or 0))
    return {"position": int(position), "eta_s": round(frames / fps, 1) if fps else None}


def backlog_frames(session: Session) -> int:
    """Frames of every unfinished task still to process."""
    total = session.scalar(
        select(func.coalesce(func.sum(_remaining), 0)).where(
            Task.state.in_(UNFINISHED), Task.deleted_at.is_(None)
        )
    )
    return max(0, int(total or 0))


def phase_of(
    state: TaskState, reported: tuple[str, float | None] | None, processing_percent: float
) -> tuple[str | None, dict[str, float]]:
    """The task's phase (None once it ended, "queued" before planning) and per-phase percent
    done. ``reported``: what the planner or stitcher last said (phase, percent)."""
    name: str | None
    if state == TaskState.QUEUED:
        name = "queued"
    elif state == TaskState.PLANNING:
        name = reported[0] if reported and reported[0] in ("probing", "planning") else "probing"
    elif state == TaskState.RUNNING:
        name = "processing"
    elif state == TaskState.STITCHING:
        name = reported[0] if reported and reported[0] in ("stitching", "uploading") else "stitching"
    else:
        name = None
    percents = dict.fromkeys(PHASES, 0.0)
    if state == TaskState.SUCCEEDED:
        return None, dict.fromkeys(PHASES, 100.0)
    if name in PHASES:
        current = PHASES.index(name)
        for done in PHASES[:current]:
            percents[done] = 100.0
        if name == "processing":
            percents[name] = processing_percent
        elif reported and reported[0] == name and reported[1] is not None:
            percents[name] = reported[1]
    elif name is None:  # failed or cancelled: what was done stays done
        percents["processing"] = processing_percent
    return name, percents
