"""Processing one chunk: the work the GPU workers (or the embedded runner's processes) do.

``process_chunk`` starts an attempt under the caller's lease (or dead-letters a chunk out of
attempts), runs the segment loop (``facefleet.task.segments``) and records how the attempt ended
(``facefleet.task.chunk_outcomes``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update

from facefleet.config.context import JobContext
from facefleet.config.errors import LeaseLost
from facefleet.config.options import JobOptions
from facefleet.observability import logs, memory, metrics
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, utcnow
from facefleet.records.states import UNFINISHED_CHUNK_STATES, ChunkState, TaskState
from facefleet.task import content_policy
from facefleet.task.chunk_outcomes import (
    ChunkOutcome,
    account,
    dead_letter,
    finish,
    handed_back,
    record_failure,
    why_stopped,
)
from facefleet.task.failures import describe, infrastructure, local_fault
from facefleet.task.frames_usage import settle_frames
from facefleet.task.local_faults import given_back
from facefleet.task.segments import run_segments
from pipeline.content import ContentBlocked

log = logging.getLogger(__name__)


def process_chunk(
    ctx: JobContext,
    task_id: str,
    chunk_index: int,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    hand_back: Callable[[], bool] = lambda: False,
    on_frame: Callable[[], None] = lambda: None,
    lease_token: str | None = None,
    still_ours: Callable[[], bool] = lambda: True,
) -> ChunkOutcome:
    """Process one chunk from its resume point. The caller must hold the chunk's lease.
    ``should_stop`` and ``hand_back`` are asked between segments; ``hand_back`` (the worker
    is stopping) puts the chunk back to waiting for the next dispatch.

    Fencing: ``lease_token`` (the lease's) is written on the chunk as the attempt starts and
    every ending of the attempt requires it still there (the reaper's take-over clears it);
    ``still_ours`` is asked before each store and checkpoint. A holder that lost its lease
    records nothing."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index))
        if task is None or chunk is None or task.state != TaskState.RUNNING:
            return ChunkOutcome.SKIPPED
        if chunk.state not in UNFINISHED_CHUNK_STATES:
            return ChunkOutcome.SKIPPED
        # the same worker taking up its own attempt that could not be recorded (the database
        # went away mid-chunk): it goes on, it is no new attempt
        continuing = chunk.state == ChunkState.RUNNING and chunk.worker == ctx.worker_name
        # another worker's start whose lease we now hold (its message came back before the
        # reaper saw the lease go): that worker was lost, which is no attempt of the chunk's
        taken_over = chunk.state == ChunkState.RUNNING and not continuing
        lost = chunk.lost + (1 if taken_over else 0)
        exhausted = (
            chunk.attempts >= ctx.max_attempts and not (continuing or taken_over)
        ) or lost >= ctx.lost_worker_budget
        last_error = chunk.error or "its worker was lost (killed or out of memory) each time"
        if lost >= ctx.lost_worker_budget:
            last_error = f"its worker was lost {lost} times (killed, out of memory or preempted)"
        # read before the update below refreshes the row
        attempt = chunk.attempts + (0 if continuing or taken_over else 1)
        ready_since, first_started = _ready_since(chunk), chunk.started_at or utcnow()
        if exhausted:
            chunk.lost = lost
        else:
            session.execute(
                update(Chunk)
                .where(Chunk.id == chunk.id, Chunk.state.in_(UNFINISHED_CHUNK_STATES))
                .values(
                    state=ChunkState.RUNNING,
                    attempts=Chunk.attempts + (0 if continuing or taken_over else 1),
                    lost=lost,
                    worker=ctx.worker_name,
                    lease_token=lease_token,
                    started_at=func.coalesce(Chunk.started_at, utcnow()),
                    updated_at=utcnow(),
                )
            )
        options = JobOptions.model_validate(task.options)
        target_key, start, end = task.target_key, chunk.frame_start, chunk.frame_end
        task_keys = keys.of(task)
    logs.bind(task_id=task_id, chunk=chunk_index, tenant=task_keys.tenant, attempt=attempt)
    if exhausted:
        return dead_letter(ctx, task_id, chunk_index, last_error)
    if not (continuing or taken_over):  # a take-over waited on a lost worker, not in the queue
        metrics.QUEUE_WAIT.observe(max(0.0, (utcnow() - ready_since).total_seconds()))
    log.info(
        "chunk %d of task %s: running (attempt %d)",
        chunk_index,
        task_id,
        attempt,
        extra={"state": ChunkState.RUNNING.value, "frame_start": start, "frame_end": end},
    )

    started = time.monotonic()
    memory.release_free_memory()  # before this chunk's threads start: arenas capped
    try:
        finished = run_segments(
            ctx,
            task_keys,
            chunk_index,
            options,
            target_key,
            start,
            end,
            lambda: should_stop() or hand_back(),
            on_frame,
            still_ours,
        )
    except LeaseLost:
        log.warning("chunk %d of task %s: lease lost, another worker goes on", chunk_index, task_id)
        return ChunkOutcome.LEASE_LOST
    except ContentBlocked as blocked:  # never retried: the same frames score the same
        log.warning("chunk %d of task %s: %s", chunk_index, task_id, blocked)
        return content_policy.block(ctx, task_id, chunk_index, blocked, lease_token)
    except Exception as exc:  # any failure of this attempt: recorded, then retried or dead-lettered
        log.warning("chunk %d of task %s failed: %r", chunk_index, task_id, exc, exc_info=True)
        if (fault := local_fault(exc)) is not None:  # this worker's, not the work's: no attempt
            return given_back(ctx, task_id, chunk_index, fault, lease_token)
        return record_failure(
            ctx,
            task_id,
            chunk_index,
            describe(exc, keep_paths=ctx.errors_keep_paths),
            infrastructure(exc),
            lease_token,
        )
    finally:
        account(ctx, task_keys, time.monotonic() - started)
        memory.release_free_memory()  # what comes next (a chunk, a stitch) starts as small
    if not finished and hand_back():
        return handed_back(ctx, task_id, chunk_index, lease_token)
    if not finished:
        return why_stopped(ctx, task_id)
    outcome = finish(ctx, task_id, chunk_index, lease_token)
    if outcome in (ChunkOutcome.SUCCEEDED, ChunkOutcome.STITCH):
        _settle(ctx, task_keys, chunk_index)
        metrics.CHUNK_DURATION.observe(max(0.0, (utcnow() - first_started).total_seconds()))
        log.info("chunk %d of task %s: succeeded", chunk_index, task_id, extra={"state": "succeeded"})
    return outcome


def _settle(ctx: JobContext, task_keys: keys.TaskKeys, chunk_index: int) -> None:
    """Count the frames whose accounting failed after their checkpoint (never a failure of
    the chunk, which is done)."""
    try:
        missing = settle_frames(ctx, task_keys, chunk_index)
    except Exception as exc:
        log.warning(
            "chunk %d of task %s: frames not settled in usage (%r)", chunk_index, task_keys.task_id, exc
        )
        return
    if missing:
        log.warning("chunk %d of task %s: %d frames counted late", chunk_index, task_keys.task_id, missing)


def _ready_since(chunk: Chunk) -> datetime:
    """Since when the chunk could have been started: planned, or its retry's backoff over,
    or (a chunk moved on from a lost worker) put back in the queue."""
    since = chunk.created_at if chunk.started_at is None else chunk.updated_at
    if chunk.not_before is not None and chunk.not_before > since:
        since = chunk.not_before
    return since
