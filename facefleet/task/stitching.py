"""Stitching a task: its segments joined by stream copy with the target's audio, once every
chunk is done (the stitch workers, or the embedded runner)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from sqlalchemy import select

from facefleet.config.context import JobContext
from facefleet.config.errors import TryLater
from facefleet.config.options import JobOptions
from facefleet.observability import logs
from facefleet.provenance.marking import marked_task
from facefleet.provenance.signing import sign_output
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, add_usage, utcnow
from facefleet.records.states import TaskState
from facefleet.storage.scratch import scratch_file
from facefleet.task import content_policy
from facefleet.task.cleanup import Cleanup, clean_up
from facefleet.task.failures import describe, infrastructure
from facefleet.task.jobs import fail_task, move_task, patience_left
from facefleet.task.planning import load_probe
from facefleet.task.quality import announce, conclude
from facefleet.task.segments import chunk_segments
from pipeline.stitch import OutputFormat, stitch

log = logging.getLogger(__name__)


def stitch_task(
    ctx: JobContext,
    task_id: str,
    *,
    still_ours: Callable[[], bool] = lambda: True,
    on_progress: Callable[[], None] = lambda: None,
) -> bool:
    """Join the segments by stream copy, mux the audio, verify, store; returns whether this
    call moved the task to ``succeeded``. Only a task in ``stitching`` is touched: a task
    that already succeeded (a second stitcher) is left exactly as it is. ``still_ours`` (the
    stitch lease) is checked before the output is stored and before the final state change,
    so a stitcher that lost its lease changes nothing; ``on_progress`` (the lease's stall
    watch) hears of every segment fetched and of the output's upload going on. Segments are
    read one at a time, so beyond the output this needs one segment and the target on local
    disk."""
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or task.state != TaskState.STITCHING:
            return False
        chunks = list(session.scalars(select(Chunk).where(Chunk.task_id == task_id).order_by(Chunk.index)))
        options = JobOptions.model_validate(task.options)
        target_key, task_keys = task.target_key, keys.of(task)
        logs.bind(tenant=task.tenant)
        failing_since = task.infra_failing_since
        frame_start, frame_end = task.frame_start, task.frame_end
        provenance = dict(task.provenance or {})
    if frame_start is None or frame_end is None:  # a task in stitching without a plan: nothing to join
        fail_task(ctx, task_id, "stitch failed: the task has no plan (no frame range)")
        return False
    segment_keys = [
        task_keys.segment(chunk.index, segment.index)
        for chunk in chunks
        for segment in chunk_segments(chunk.frame_start, chunk.frame_end, options.segment_frames)
    ]

    def segment(number: int, key: str) -> Callable[[], AbstractContextManager[Path]]:
        def fetch() -> AbstractContextManager[Path]:
            on_progress()
            ctx.set_phase(task_id, "stitching", 100.0 * number / len(segment_keys))
            return ctx.storage.fetch_once(key, ctx.scratch)

        return fetch

    try:
        with (
            scratch_file(ctx.scratch, f"out-{task_id}", ".mp4") as out,
            ctx.storage.hold(target_key) as target,
        ):
            stitch(
                [segment(number, key) for number, key in enumerate(segment_keys)],
                target,
                load_probe(ctx, task_keys),
                frame_start,
                frame_end,
                out,
                OutputFormat(options.container, options.faststart),
            )
            provenance.update(
                sign_output(
                    ctx.c2pa_files, ctx.scratch, task_id, options, ctx.runtime, marked_task(provenance), out
                )
            )
            if not still_ours():
                log.warning("stitch of task %s lost its lease: another stitcher goes on", task_id)
                return False
            ctx.set_phase(task_id, "uploading", None)
            ctx.storage.put_file(task_keys.output, out, on_progress)
            size = out.stat().st_size
    except Exception as exc:
        log.warning("stitching task %s failed: %r", task_id, exc, exc_info=True)
        service = infrastructure(exc)
        if service is not None and patience_left(ctx, task_id, failing_since):
            raise TryLater(service) from exc
        if still_ours():
            fail_task(ctx, task_id, f"stitch failed: {describe(exc, keep_paths=ctx.errors_keep_paths)}")
        return False
    if not still_ours():
        return False
    quality = conclude(ctx, task_id)  # the chunks' figures, summed once for the task's row
    verdict = content_policy.conclude(ctx, task_id)
    with ctx.sessions.begin() as session:
        won = move_task(
            session,
            task_id,
            TaskState.SUCCEEDED,
            quality=quality,
            content_policy=verdict,
            output_key=task_keys.output,
            bytes_out=size,
            provenance=provenance,
            finished_at=utcnow(),
            infra_failing_since=None,
            cleanup=None if ctx.keep_work_files else Cleanup.WORK,
        )
        if won:
            add_usage(session, task_keys.tenant, bytes_out=size)
    if not won:  # cancelled or deleted while stitching: its clean-up removes the output too
        log.info("task %s ended while stitching: output left to its clean-up", task_id)
        return False
    log.info("task %s succeeded", task_id)
    announce(task_id, task_keys.tenant, options, quality, ctx.quality_thresholds)
    content_policy.announce(ctx, task_id, verdict)
    clean_up(ctx, task_id)
    return True
