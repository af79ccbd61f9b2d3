"""How an attempt at a chunk ends, written to the database: the chunk marked succeeded (the
finisher that marks a task's last chunk moves the task to stitching), queued again after a
failure or dead-lettered, handed back by a stopping worker, or stopped because its task
ended; and the usage an attempt adds. ``ChunkOutcome`` names each ending.

Kept apart from the segment loop (``facefleet.task.segments``) and from ``process_chunk``
(``facefleet.task.chunks``), which both call in here, so that neither imports the other; the
reaper's sweep (``stitch_finished``) uses the same move to stitching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, case, exists, select, true, update
from sqlalchemy.orm import Session

from facefleet.config.context import JobContext
from facefleet.config.policy import infra_backoff, retry_delay
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, add_usage, after_commit, utcnow
from facefleet.records.states import ChunkState, TaskState, chunk_sources
from facefleet.task.jobs import fail_task_in, task_moved

log = logging.getLogger(__name__)


class ChunkOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    STITCH = "stitch"  # this call finished the task's last chunk: the caller stitches, once
    RETRY = "retry"  # the attempt failed; the chunk is queued again
    RETRY_LATER = "retry-later"  # a service was unavailable: queued again, no attempt spent
    FAILED = "failed"  # attempts exhausted; chunk and task failed with a reason
    BLOCKED = "blocked"  # the content policy blocked its task: failed for good, no host's fault
    CANCELLED = "cancelled"  # the task was cancelled or deleted: stopped between segments
    TASK_ENDED = "task-ended"  # the task failed meanwhile (another chunk, a retry limit)
    LEASE_LOST = "lease-lost"  # another worker holds the chunk now and goes on from here
    HANDED_BACK = "handed-back"  # its worker is stopping: back to waiting, for another worker now
    LOCAL_FAULT = "local-fault"  # its worker is broken (disk, device, credentials): given back
    SKIPPED = "skipped"  # nothing to do: already done, or the task is no longer running


@dataclass
class ChunkHooks:
    """Test-only seams in the job core (no effect unless set)."""

    # called inside the transaction that marks a chunk succeeded, before the task's row is
    # locked: a test holds two finishing transactions here and lets them go together
    chunk_marked: Callable[[str, int], None] | None = None
    # called inside the dead letter's transaction, after the chunk is marked failed and
    # before its task is: a test kills the process here
    dead_lettered: Callable[[str, int], None] | None = None


hooks = ChunkHooks()


def fenced(lease_token: str | None) -> ColumnElement[bool]:
    """The condition that the chunk is still held under ``lease_token`` (the start of the
    attempt wrote it, the reaper's take-over clears it); None: no lease (embedded mode)."""
    return true() if lease_token is None else Chunk.lease_token == lease_token


def finish(ctx: JobContext, task_id: str, chunk_index: int, lease_token: str | None = None) -> ChunkOutcome:
    """Mark the chunk succeeded (if still held under ``lease_token``); whichever transaction
    marks a task's last chunk moves the task to stitching, however the finishing chunks'
    commits interleave: the task's row is locked before the count, so the second of two
    concurrent finishers waits for the first to commit and then sees its chunk as succeeded
    (READ COMMITTED takes a fresh snapshot per statement)."""
    with ctx.sessions.begin() as session:
        result = session.execute(
            update(Chunk)
            .where(
                Chunk.task_id == task_id,
                Chunk.index == chunk_index,
                Chunk.state.in_(chunk_sources(ChunkState.SUCCEEDED)),
                fenced(lease_token),
            )
            .values(
                state=ChunkState.SUCCEEDED,
                frames_done=Chunk.frame_end - Chunk.frame_start,
                error=None,
                infra_failing_since=None,
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return ChunkOutcome.SKIPPED  # cancelled, finished by another delivery, or taken over
        if hooks.chunk_marked is not None:
            hooks.chunk_marked(task_id, chunk_index)
        won = move_to_stitching_if_done(session, task_id)
        return ChunkOutcome.STITCH if won else ChunkOutcome.SUCCEEDED


def move_to_stitching_if_done(session: Session, task_id: str) -> bool:
    """In the caller's transaction: a running task whose chunks all succeeded moves to
    stitching (True: the caller sends the stitch, once)."""
    state = session.scalar(select(Task.state).where(Task.id == task_id).with_for_update())
    if state != TaskState.RUNNING:
        return False
    unfinished = exists().where(and_(Chunk.task_id == task_id, Chunk.state != ChunkState.SUCCEEDED))
    has_chunks = exists().where(Chunk.task_id == task_id)
    won = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.state == TaskState.RUNNING, has_chunks, ~unfinished)
        .values(state=TaskState.STITCHING, updated_at=utcnow())
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return False
    task_moved(session, task_id, TaskState.STITCHING)
    return True


def stitch_finished(ctx: JobContext) -> list[str]:
    """Running tasks whose chunks have all succeeded move to stitching (a finisher that died
    between its chunk and the task, or any other way a task fell between the two steps);
    returns those this call moved, whose stitch the caller sends."""
    unfinished = exists().where(and_(Chunk.task_id == Task.id, Chunk.state != ChunkState.SUCCEEDED))
    has_chunks = exists().where(Chunk.task_id == Task.id)
    with ctx.sessions() as session:
        candidates = list(
            session.scalars(select(Task.id).where(Task.state == TaskState.RUNNING, has_chunks, ~unfinished))
        )
    moved = []
    for task_id in candidates:
        with ctx.sessions.begin() as session:
            if move_to_stitching_if_done(session, task_id):
                moved.append(task_id)
    return moved


def record_failure(
    ctx: JobContext,
    task_id: str,
    chunk_index: int,
    reason: str,
    service: str | None = None,
    lease_token: str | None = None,
) -> ChunkOutcome:
    """An attempt failed with ``reason``. A failure of the work spends the attempt; one of a
    service (``service``: its role) gives the attempt back and spends time instead, up to
    ``infra_retry_s`` from the first such failure in a row."""
    with ctx.sessions.begin() as session:
        chunk = session.scalar(
            select(Chunk)
            .where(Chunk.task_id == task_id, Chunk.index == chunk_index, fenced(lease_token))
            .with_for_update()
        )
        if chunk is None or chunk.state != ChunkState.RUNNING or chunk.worker != ctx.worker_name:
            return ChunkOutcome.SKIPPED  # no longer ours: another worker took it over (lost lease)
        chunk.error = reason
        if service is not None:
            since = chunk.infra_failing_since or utcnow()
            waited = (utcnow() - since).total_seconds()
            if waited <= ctx.infra_retry_s:
                chunk.state, chunk.infra_failing_since = ChunkState.QUEUED, since
                chunk.attempts = max(0, chunk.attempts - 1)
                delay = infra_backoff(waited)
                _wait_for_release(chunk, delay)
                _log_retry(chunk, delay, reason, f"{service} unavailable: no attempt spent")
                return ChunkOutcome.RETRY_LATER
            reason = f"{service} was unavailable for {waited:.0f} s: {reason}"
        elif chunk.attempts < ctx.max_attempts:
            chunk.state, chunk.infra_failing_since = ChunkState.QUEUED, None  # the next attempt starts clean
            delay = retry_delay(max(1, chunk.attempts))
            _wait_for_release(chunk, delay)
            _log_retry(chunk, delay, reason, f"attempt {chunk.attempts} of {ctx.max_attempts} spent")
            return ChunkOutcome.RETRY
        return _dead_letter_in(session, chunk, reason)  # under the same lock and fence


def _log_retry(chunk: Chunk, delay_s: float, reason: str, spent: str) -> None:
    log.warning(
        "chunk %d of task %s: retried in %.0f s (%s)",
        chunk.index,
        chunk.task_id,
        delay_s,
        spent,
        extra={"state": ChunkState.QUEUED.value, "attempt": chunk.attempts, "error": reason},
    )


def _wait_for_release(chunk: Chunk, delay_s: float) -> None:
    """Back to waiting in the chunks table, not to be released for ``delay_s`` (a backoff)."""
    chunk.released_at = None
    chunk.not_before = utcnow() + timedelta(seconds=delay_s)


def dead_letter(ctx: JobContext, task_id: str, chunk_index: int, reason: str) -> ChunkOutcome:
    """The chunk failed for good (out of attempts or of lost workers)."""
    with ctx.sessions.begin() as session:
        chunk = session.scalar(
            select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index).with_for_update()
        )
        assert chunk is not None
        return _dead_letter_in(session, chunk, reason)


def _dead_letter_in(session: Session, chunk: Chunk, reason: str) -> ChunkOutcome:
    """The chunk and its task fail in the caller's transaction: a crash between two
    transactions would leave the task running for ever, holding its tenant's slot."""
    task_id, chunk_index = chunk.task_id, chunk.index
    chunk.state, chunk.error, chunk.finished_at = ChunkState.FAILED, reason, utcnow()
    attempts, first, last = chunk.attempts, chunk.frame_start, chunk.frame_end - 1
    session.flush()  # chunk rows are locked before the task's, as everywhere
    if hooks.dead_lettered is not None:
        hooks.dead_lettered(task_id, chunk_index)
    spent = f" after {attempts} attempts" if attempts else ""  # none: its workers were lost
    fail_task_in(session, task_id, f"chunk {chunk_index} (frames {first}-{last}) failed{spent}: {reason}")
    extra = {"state": ChunkState.FAILED.value, "attempt": attempts, "error": reason}
    after_commit(
        session,
        lambda: log.error(
            "chunk %d of task %s: failed after %d attempts", chunk_index, task_id, attempts, extra=extra
        ),
    )
    return ChunkOutcome.FAILED


def fail_tasks_with_failed_chunks(ctx: JobContext) -> list[str]:
    """Running tasks that hold a failed chunk fail with that chunk's reason (defence in depth:
    ``dead_letter`` fails both at once, but rows written by an older version, or by hand, may
    still be split); returns those this call failed."""
    failed_chunk = and_(Chunk.task_id == Task.id, Chunk.state == ChunkState.FAILED)
    with ctx.sessions() as session:
        rows = session.execute(
            select(Task.id, Chunk.index, Chunk.error)
            .join(Chunk, failed_chunk)
            .where(Task.state == TaskState.RUNNING)
            .order_by(Task.id, Chunk.index)
        ).all()
    ended: list[str] = []
    for task_id, index, error in rows:
        if task_id in ended:
            continue
        reason = f"chunk {index} failed: {error or 'no reason was recorded'}"
        with ctx.sessions.begin() as session:
            if fail_task_in(session, task_id, reason):
                ended.append(task_id)
    return ended


def handed_back(
    ctx: JobContext, task_id: str, chunk_index: int, lease_token: str | None = None
) -> ChunkOutcome:
    """Its worker is stopping (a rollout, a scale-down): the chunk goes back to waiting with
    its attempt given back (stopping is no failure of the work)."""
    if not give_back(ctx, task_id, chunk_index, lease_token):
        return why_stopped(ctx, task_id)
    return ChunkOutcome.HANDED_BACK


def give_back(
    ctx: JobContext, task_id: str, chunk_index: int, lease_token: str | None, error: str | None = None
) -> bool:
    """The chunk, still this worker's (under ``lease_token``) and its task running, goes back
    to waiting with no backoff and its attempt returned; what it stored stays, the next
    holder resumes at the checkpoint. ``error``: why (kept as the chunk's last error).
    False: it was no longer ours to give."""
    running_task = exists().where(Task.id == task_id, Task.state == TaskState.RUNNING)
    values = {} if error is None else {"error": error}
    with ctx.sessions.begin() as session:
        moved = session.execute(
            update(Chunk)
            .where(
                Chunk.task_id == task_id,
                Chunk.index == chunk_index,
                Chunk.state == ChunkState.RUNNING,
                Chunk.worker == ctx.worker_name,
                fenced(lease_token),
                running_task,
            )
            .values(
                state=ChunkState.QUEUED,
                attempts=case((Chunk.attempts > 0, Chunk.attempts - 1), else_=0),
                released_at=None,
                not_before=None,
                updated_at=utcnow(),
                **values,
            )
        )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def why_stopped(ctx: JobContext, task_id: str) -> ChunkOutcome:
    """The chunk stopped between segments: its task ended, or its lease was lost (the only
    other reason a holder is told to stop)."""
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
    if task is None or task.deleted_at is not None or task.state == TaskState.CANCELLED:
        return ChunkOutcome.CANCELLED  # what it stored goes with the task's clean-up
    if task.state != TaskState.RUNNING:
        return ChunkOutcome.TASK_ENDED
    return ChunkOutcome.LEASE_LOST


def account(ctx: JobContext, task_keys: keys.TaskKeys, seconds: float) -> None:
    """Add an attempt's worker time to the task's usage and its tenant's month (its frames
    are counted per stored segment, by ``facefleet.task.frames_usage``)."""
    with ctx.sessions.begin() as session:
        session.execute(
            update(Task)
            .where(Task.id == task_keys.task_id)
            .values(worker_seconds=Task.worker_seconds + seconds)
        )
        add_usage(session, task_keys.tenant, worker_seconds=seconds)
