"""The content policy around a task (``FACEFLEET_CONTENT_POLICY``): the classifier a process
loads once, the scores of each stored segment (on its chunk's row, like the quality gate's
figures), the task's verdict at its stitch (on its row, with a metric and a line when
flagged), and the block: the chunk and its task fail at once, for good, with reason
``content_policy``, and every file of the task goes.

A segment's scores are written by the chunk's lease holder after the segment is stored and
before the checkpoint that names it, so a resumed chunk writes the same scores over them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from facefleet.config.context import JobContext
from facefleet.observability import metrics
from facefleet.records.db import Chunk, Task, after_commit, utcnow
from facefleet.records.states import ChunkState
from facefleet.task.chunk_outcomes import ChunkOutcome, fenced, why_stopped
from facefleet.task.cleanup import Cleanup, clean_up
from facefleet.task.jobs import fail_task_in
from pipeline.content import ContentBlocked, ContentClassifier, Screening, load_classifier

log = logging.getLogger(__name__)

REASON = "content_policy"  # the task's ``reason`` when the policy blocked it


def classifier(ctx: JobContext) -> ContentClassifier | None:
    """This process's classifier (None: the policy is off, nothing is loaded)."""
    if not ctx.content_policy.on:
        return None
    cache_key = ("content_policy", ctx.content_policy.model)
    if cache_key not in ctx.cache:
        ctx.cache[cache_key] = load_classifier(ctx.content_policy.model, ctx.runtime)
    found: ContentClassifier = ctx.cache[cache_key]
    return found


def conclude(ctx: JobContext, task_id: str) -> dict[str, Any] | None:
    """The task's verdict from its chunks' scores, for its row at the stitch (None: the
    policy was off for all of its chunks)."""
    if not ctx.content_policy.on:
        return None
    total = Screening()
    with ctx.read_sessions() as session:
        for scores in session.scalars(select(Chunk.content_policy).where(Chunk.task_id == task_id)):
            for part in (scores or {}).get("segments", {}).values():
                total.add(Screening.from_json(part))
    return total.report(ctx.content_policy.threshold)


def announce(ctx: JobContext, task_id: str, verdict: dict[str, Any] | None) -> None:
    """Once the task's success holds: a flagged task is counted and logged."""
    if not verdict or not verdict.get("flagged"):
        return
    metrics.CONTENT_FLAGGED.labels(policy=ctx.content_policy.mode).inc()
    log.warning(
        "task %s was flagged by the content policy (score %.3f over %d sampled frames)",
        task_id,
        verdict["score"],
        verdict["samples"],
        extra={"content_policy": verdict},
    )


def block(
    ctx: JobContext, task_id: str, chunk_index: int, blocked: ContentBlocked, lease_token: str | None
) -> ChunkOutcome:
    """The chunk and its task fail for good (no retry: the same frames score the same) in one
    transaction that also records the removal of every file of the task; the removal is
    done now when no other holder still writes, else by the reaper's next pass."""
    reason, ours = str(blocked), False
    with ctx.sessions.begin() as session:
        chunk = session.scalar(
            select(Chunk)
            .where(Chunk.task_id == task_id, Chunk.index == chunk_index, fenced(lease_token))
            .with_for_update()
        )
        if chunk is not None and chunk.state == ChunkState.RUNNING:
            _fail(session, chunk, reason)
            ours = True
    if not ours:  # another chunk blocked the task first, or the chunk was taken over
        return _ended(ctx, task_id)
    clean_up(ctx, task_id)
    return ChunkOutcome.BLOCKED


def _fail(session: Session, chunk: Chunk, reason: str) -> None:
    """In the caller's transaction: the chunk, then its task (the lock order), failed with
    ``reason``; the task's clean-up of every file recorded with its failure."""
    task_id = chunk.task_id
    chunk.state, chunk.error, chunk.finished_at = ChunkState.FAILED, reason, utcnow()
    session.flush()
    if fail_task_in(session, task_id, reason, REASON):
        # nothing of it is kept, and it cannot be retried: its inputs go too
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(cleanup=Cleanup.ALL.value, inputs_expired_at=utcnow())
        )

    def committed() -> None:
        metrics.CONTENT_FLAGGED.labels(policy="block").inc()
        log.error("task %s blocked by the content policy: %s", task_id, reason)

    after_commit(session, committed)


def _ended(ctx: JobContext, task_id: str) -> ChunkOutcome:
    outcome = why_stopped(ctx, task_id)
    if outcome == ChunkOutcome.TASK_ENDED:
        clean_up(ctx, task_id)  # the last holder of a blocked task removes its files
    return outcome
