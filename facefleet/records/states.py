"""Task and chunk states, written down once, with the transitions each allows."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    QUEUED = "queued"
    PLANNING = "planning"
    RUNNING = "running"
    STITCHING = "stitching"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATES


class ChunkState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # not failed itself: its task failed (another chunk, a deadline) and it stopped


TERMINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.PLANNING, TaskState.FAILED, TaskState.CANCELLED}),
    # planning -> queued: a planner died and the plan is redone
    TaskState.PLANNING: frozenset(
        {TaskState.RUNNING, TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.RUNNING: frozenset({TaskState.STITCHING, TaskState.FAILED, TaskState.CANCELLED}),
    # stitching -> running: a stitcher died, the stitch is retried
    TaskState.STITCHING: frozenset(
        {TaskState.SUCCEEDED, TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.SUCCEEDED: frozenset(),
    # failed -> queued / running / stitching: the user retries whatever failed (the plan,
    # some chunks, or the stitch of chunks that all succeeded)
    TaskState.FAILED: frozenset({TaskState.RUNNING, TaskState.QUEUED, TaskState.STITCHING}),
    TaskState.CANCELLED: frozenset(),
}

CHUNK_TRANSITIONS: dict[ChunkState, frozenset[ChunkState]] = {
    # queued -> succeeded: a holder that was still working when its chunk was set back to
    # queued (lease lost, or the task retried) finished every segment
    ChunkState.QUEUED: frozenset(
        {
            ChunkState.RUNNING,
            ChunkState.SUCCEEDED,
            ChunkState.CANCELLED,
            ChunkState.FAILED,
            ChunkState.STOPPED,
        }
    ),
    # running -> queued: the lease expired or the attempt failed and will be retried
    ChunkState.RUNNING: frozenset(
        {
            ChunkState.SUCCEEDED,
            ChunkState.QUEUED,
            ChunkState.FAILED,
            ChunkState.CANCELLED,
            ChunkState.STOPPED,
        }
    ),
    ChunkState.SUCCEEDED: frozenset(),
    # failed / stopped -> queued: the user retries the task
    ChunkState.FAILED: frozenset({ChunkState.QUEUED}),
    ChunkState.STOPPED: frozenset({ChunkState.QUEUED}),
    ChunkState.CANCELLED: frozenset(),
}

UNFINISHED_CHUNK_STATES = frozenset({ChunkState.QUEUED, ChunkState.RUNNING})


def task_sources(target: TaskState) -> list[TaskState]:
    """The states a task may move to ``target`` from (for conditional UPDATEs)."""
    return [s for s, allowed in TASK_TRANSITIONS.items() if target in allowed]


def chunk_sources(target: ChunkState) -> list[ChunkState]:
    return [s for s, allowed in CHUNK_TRANSITIONS.items() if target in allowed]
