"""Processing one chunk and stitching a task: the work the GPU workers (or the embedded
runner's processes) do.

Commit order, per segment: encode to a scratch file, store it in the bucket under its
deterministic key, then save the checkpoint that names it. A resumed chunk starts at the
first segment not yet stored, so at most the one segment in flight is redone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from itertools import islice
from pathlib import Path

from sqlalchemy import and_, exists, func, select, update

from facefleet import keys
from facefleet.context import JobContext
from facefleet.db import Chunk, Task, utcnow
from facefleet.jobs import discard_segments, discard_task_files, fail_task, load_assets, load_probe, move_task
from facefleet.options import JobOptions
from facefleet.states import ChunkState, TaskState, chunk_sources
from pipeline.encode import EncoderSettings, encode_segment
from pipeline.frames import Frame, batched
from pipeline.plan import SegmentPlan, plan_chunks
from pipeline.prefetch import prefetch
from pipeline.processors import Chain, build_chain
from pipeline.stitch import stitch

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


class ChunkOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    STITCH = "stitch"  # this call finished the task's last chunk: the caller stitches, once
    RETRY = "retry"  # the attempt failed; the chunk is queued again
    FAILED = "failed"  # attempts exhausted; chunk and task failed with a reason
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # nothing to do: already done, or the task is no longer running


def process_chunk(
    ctx: JobContext,
    task_id: str,
    chunk_index: int,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_frame: Callable[[], None] = lambda: None,
) -> ChunkOutcome:
    """Process one chunk from its resume point. The caller must hold the chunk's lease."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index))
        if task is None or chunk is None or task.state != TaskState.RUNNING:
            return ChunkOutcome.SKIPPED
        if chunk.state not in (ChunkState.QUEUED, ChunkState.RUNNING):
            return ChunkOutcome.SKIPPED
        exhausted = chunk.attempts >= ctx.max_attempts
        last_error = chunk.error or "the worker was lost"
        if not exhausted:
            session.execute(
                update(Chunk)
                .where(Chunk.id == chunk.id, Chunk.state.in_([ChunkState.QUEUED, ChunkState.RUNNING]))
                .values(
                    state=ChunkState.RUNNING,
                    attempts=Chunk.attempts + 1,
                    worker=ctx.worker_name,
                    started_at=func.coalesce(Chunk.started_at, utcnow()),
                    updated_at=utcnow(),
                )
            )
        options = JobOptions.model_validate(task.options)
        target_key, start, end = task.target_key, chunk.frame_start, chunk.frame_end
    if exhausted:
        return _dead_letter(ctx, task_id, chunk_index, last_error)

    started = time.monotonic()
    try:
        finished = _run_segments(
            ctx, task_id, chunk_index, options, target_key, start, end, should_stop, on_frame
        )
    except Exception as exc:  # any failure of this attempt: recorded, then retried or dead-lettered
        log.warning(
            "chunk %d of task %s failed: %s",
            chunk_index,
            task_id,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return _record_failure(ctx, task_id, chunk_index, f"{type(exc).__name__}: {exc}")
    finally:
        _account(ctx, task_id, seconds=time.monotonic() - started)
    if not finished:  # cancelled, or the lease was lost (another worker goes on from here)
        if _task_state(ctx, task_id) == TaskState.CANCELLED:  # its last segment and checkpoint
            ctx.checkpoints.clear(task_id)  # may have landed after the cancel's sweep
            discard_segments(ctx, task_id, chunk_index)
        return ChunkOutcome.CANCELLED
    return _finish(ctx, task_id, chunk_index)


def chunk_segments(start: int, end: int, segment_frames: int) -> tuple[SegmentPlan, ...]:
    return plan_chunks(start, end, end - start, segment_frames)[0].segments


def resume_point(ctx: JobContext, task_id: str, chunk_index: int, segments_total: int) -> int:
    """Segments of the chunk already stored: the checkpoint if the store has one, else the
    contiguous run of segment objects found in the bucket."""
    saved = ctx.checkpoints.load(task_id, chunk_index)
    if saved is not None:
        return min(saved, segments_total)
    stored = set(ctx.storage.list(keys.segment_prefix(task_id, chunk_index)))
    done = 0
    while done < segments_total and keys.segment_key(task_id, chunk_index, done) in stored:
        done += 1
    return done


def _run_segments(
    ctx: JobContext,
    task_id: str,
    chunk_index: int,
    options: JobOptions,
    target_key: str,
    start: int,
    end: int,
    should_stop: Callable[[], bool],
    on_frame: Callable[[], None],
) -> bool:
    """Encode and store the chunk's remaining segments; returns whether all are stored (False:
    stopped between segments). Each stored segment is counted in the task's usage at once, so
    an attempt that dies later still has its work accounted for."""
    from pipeline.reader import read_frames

    segments = chunk_segments(start, end, options.segment_frames)
    done = resume_point(ctx, task_id, chunk_index, len(segments))
    if done == len(segments):
        return True
    video = load_probe(ctx, task_id)
    chain = _chain(ctx, task_id, options)
    encoder = EncoderSettings(crf=options.crf, preset=options.preset, threads=ctx.encoder_threads)
    progress = _ProgressReporter(ctx, task_id, chunk_index, segments[done].start - start, on_frame)
    frames = prefetch(read_frames(ctx.storage.local_path(target_key), video, segments[done].start, end))
    for segment in segments[done:]:
        if should_stop() or _task_stopped(ctx, task_id):
            return False
        count = segment.end - segment.start
        scratch = ctx.scratch / f"{task_id}-{chunk_index:05d}-{segment.index:05d}.mp4"
        try:
            written = encode_segment(
                progress.track(_processed(chain, islice(frames, count), options.face_batch)),
                scratch,
                video,
                encoder,
            )
            if written != count:
                raise RuntimeError(f"segment {segment.index} got {written} of {count} frames")
            ctx.storage.put_file(keys.segment_key(task_id, chunk_index, segment.index), scratch)
        finally:
            scratch.unlink(missing_ok=True)
        ctx.checkpoints.save(task_id, chunk_index, segment.index + 1, segment.end - start)
        _account(ctx, task_id, frames=count)
        on_frame()  # the upload was progress too
    return True


def _processed(chain: Chain, frames: Iterator[Frame], batch: int) -> Iterator[Frame]:
    """The frames through the chain, in batches, a batch ahead of the encoder."""
    if chain.empty:
        return frames
    return prefetch((f for group in batched(frames, batch) for f in chain.process(group)), depth=batch)


class _ProgressReporter:
    """Counts frames as they reach the encoder and reports them, at most twice a second;
    ``on_frame`` hears of every one (the lease's stall watch)."""

    def __init__(
        self, ctx: JobContext, task_id: str, chunk_index: int, already: int, on_frame: Callable[[], None]
    ) -> None:
        self._ctx, self._task_id, self._chunk_index = ctx, task_id, chunk_index
        self._on_frame = on_frame
        self.frames = already
        self._last = 0.0

    def track(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        for frame in frames:
            yield frame
            self._on_frame()
            self.frames += 1
            now = time.monotonic()
            if now - self._last >= PROGRESS_INTERVAL_S:
                self._last = now
                self._ctx.checkpoints.report_progress(self._task_id, self._chunk_index, self.frames)


def _chain(ctx: JobContext, task_id: str, options: JobOptions) -> Chain:
    cache_key = ("chain", task_id)
    if cache_key not in ctx.cache:
        assets = load_assets(ctx, task_id) if options.processors else {}
        ctx.cache[cache_key] = build_chain(
            options.processors, options.processor_options(), assets, ctx.runtime
        )
    chain: Chain = ctx.cache[cache_key]
    return chain


def _task_state(ctx: JobContext, task_id: str) -> TaskState | None:
    with ctx.sessions() as session:
        return session.scalar(select(Task.state).where(Task.id == task_id))


def _task_stopped(ctx: JobContext, task_id: str) -> bool:
    return _task_state(ctx, task_id) != TaskState.RUNNING


def _finish(ctx: JobContext, task_id: str, chunk_index: int) -> ChunkOutcome:
    with ctx.sessions.begin() as session:
        result = session.execute(
            update(Chunk)
            .where(
                Chunk.task_id == task_id,
                Chunk.index == chunk_index,
                Chunk.state.in_(chunk_sources(ChunkState.SUCCEEDED)),
            )
            .values(
                state=ChunkState.SUCCEEDED,
                frames_done=Chunk.frame_end - Chunk.frame_start,
                error=None,
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return ChunkOutcome.SKIPPED  # cancelled meanwhile, or another delivery finished it
        unfinished = exists().where(and_(Chunk.task_id == task_id, Chunk.state != ChunkState.SUCCEEDED))
        won = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.state == TaskState.RUNNING, ~unfinished)
            .values(state=TaskState.STITCHING, updated_at=utcnow())
        )
        return ChunkOutcome.STITCH if won.rowcount == 1 else ChunkOutcome.SUCCEEDED  # type: ignore[attr-defined]


def _record_failure(ctx: JobContext, task_id: str, chunk_index: int, reason: str) -> ChunkOutcome:
    with ctx.sessions.begin() as session:
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index))
        if chunk is None or chunk.state != ChunkState.RUNNING or chunk.worker != ctx.worker_name:
            return ChunkOutcome.SKIPPED  # no longer ours: another worker took it over (lost lease)
        chunk.error = reason
        if chunk.attempts < ctx.max_attempts:
            chunk.state = ChunkState.QUEUED
            return ChunkOutcome.RETRY
    return _dead_letter(ctx, task_id, chunk_index, reason)


def _dead_letter(ctx: JobContext, task_id: str, chunk_index: int, reason: str) -> ChunkOutcome:
    with ctx.sessions.begin() as session:
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index))
        assert chunk is not None
        chunk.state, chunk.error, chunk.finished_at = ChunkState.FAILED, reason, utcnow()
        attempts, first, last = chunk.attempts, chunk.frame_start, chunk.frame_end - 1
    fail_task(
        ctx,
        task_id,
        f"chunk {chunk_index} (frames {first}-{last}) failed after {attempts} attempts: {reason}",
    )
    return ChunkOutcome.FAILED


def _account(ctx: JobContext, task_id: str, *, seconds: float = 0.0, frames: int = 0) -> None:
    """Add worker time and frames stored to the task's usage."""
    with ctx.sessions.begin() as session:
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(
                worker_seconds=Task.worker_seconds + seconds, frames_processed=Task.frames_processed + frames
            )
        )


# ---------------------------------------------------------------------------- stitching


def stitch_task(ctx: JobContext, task_id: str) -> None:
    """Join the segments by stream copy, mux the audio, verify, store; exactly once per task
    (the caller won the running -> stitching update). Safe to redo if interrupted."""
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or task.state != TaskState.STITCHING:
            return
        chunks = list(session.scalars(select(Chunk).where(Chunk.task_id == task_id).order_by(Chunk.index)))
        options = JobOptions.model_validate(task.options)
        target_key = task.target_key
        frame_start, frame_end = task.frame_start, task.frame_end
    assert frame_start is not None and frame_end is not None
    out = ctx.scratch / f"{task_id}-output.mp4"
    try:
        segment_paths: list[Path] = [
            ctx.storage.local_path(keys.segment_key(task_id, chunk.index, segment.index))
            for chunk in chunks
            for segment in chunk_segments(chunk.frame_start, chunk.frame_end, options.segment_frames)
        ]
        stitch(
            segment_paths,
            ctx.storage.local_path(target_key),
            load_probe(ctx, task_id),
            frame_start,
            frame_end,
            out,
        )
        ctx.storage.put_file(keys.output_key(task_id), out)
        size = out.stat().st_size
    except Exception as exc:
        log.warning("stitching task %s failed: %s", task_id, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        fail_task(ctx, task_id, f"stitch failed: {exc}")
        return
    finally:
        out.unlink(missing_ok=True)
    with ctx.sessions.begin() as session:
        succeeded = move_task(
            session,
            task_id,
            TaskState.SUCCEEDED,
            output_key=keys.output_key(task_id),
            bytes_out=size,
            finished_at=utcnow(),
        )
    if not succeeded:  # cancelled while stitching
        discard_task_files(ctx, task_id)
        log.info("task %s was cancelled while stitching: output discarded", task_id)
        return
    if not ctx.keep_work_files:
        ctx.storage.delete_prefix(keys.work_prefix(task_id))
    ctx.checkpoints.clear(task_id)
    log.info("task %s succeeded", task_id)
