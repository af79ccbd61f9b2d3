"""The segment loop of one chunk: its remaining segments read from the target, run through
the processor chain, encoded, stored and checkpointed; and where a resumed chunk starts.

Commit order, per segment: encode to a scratch file, store it in the bucket under its
deterministic key, then save the checkpoint that names it. Two segments are in flight at
once (one finishing, the next encoding), but a segment is stored only after the one before
it is checkpointed, so a resumed chunk starts at the first segment not yet checkpointed and
rewrites at most one stored segment.

Kept apart from ``process_chunk`` (``facefleet.task.chunks``), which starts an attempt and
records how it ended: this is the media work in between, and the stitch plans its segments
with the same ``chunk_segments``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from facefleet.config.context import JobContext
from facefleet.config.errors import LeaseLost
from facefleet.config.options import JobOptions
from facefleet.observability import metrics
from facefleet.provenance.marking import gate_of_marked, with_watermark
from facefleet.records import keys
from facefleet.records.db import Chunk, Task
from facefleet.records.states import TaskState
from facefleet.storage.scratch import scratch_file
from facefleet.task import content_policy
from facefleet.task.frames_usage import account_segment
from facefleet.task.planning import load_assets, load_probe
from pipeline.content import Screening, screen
from pipeline.encode import EncoderSettings, encode_segment
from pipeline.frames import Frame, batched
from pipeline.models import oom
from pipeline.output_size import CODECS
from pipeline.plan import SegmentPlan, plan_chunks
from pipeline.prefetch import prefetch
from pipeline.processors import Chain, build_chain
from pipeline.quality import Figures, Measures, capture, measure_segment

if TYPE_CHECKING:  # numpy and the face models only for jobs with processors
    import numpy as np

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
# Segments in flight at once: one taking frames, the one before it finishing.
SEGMENTS_IN_FLIGHT = 2


def chunk_segments(start: int, end: int, segment_frames: int) -> tuple[SegmentPlan, ...]:
    return plan_chunks(start, end, end - start, segment_frames)[0].segments


def resume_point(ctx: JobContext, task_keys: keys.TaskKeys, chunk_index: int, segments_total: int) -> int:
    """Segments of the chunk already stored: the checkpoint if the store has one, else the
    contiguous run of segment objects found in the bucket."""
    saved = ctx.checkpoints.load(task_keys.task_id, chunk_index)
    if saved is not None:
        return min(saved, segments_total)
    stored = set(ctx.storage.list(task_keys.segment_prefix(chunk_index)))
    done = 0
    while done < segments_total and task_keys.segment(chunk_index, done) in stored:
        done += 1
    return done


def run_segments(
    ctx: JobContext,
    task_keys: keys.TaskKeys,
    chunk_index: int,
    options: JobOptions,
    target_key: str,
    start: int,
    end: int,
    should_stop: Callable[[], bool],
    on_frame: Callable[[], None],
    still_ours: Callable[[], bool] = lambda: True,
) -> bool:
    """Encode and store the chunk's remaining segments; returns whether all are stored (False:
    stopped between segments). Each stored segment is counted in the task's usage at once, so
    an attempt that dies later still has its work accounted for.

    ``still_ours`` (the chunk's lease) is checked right before each store and each
    checkpoint: a holder that lost its lease raises LeaseLost and writes nothing more.

    Segments overlap: once a segment has taken its last frame, the next one starts encoding
    while the first drains its encoder, is closed, stored and checkpointed, so no core waits
    at a segment boundary. Stores and checkpoints still happen in segment order."""
    from pipeline.reader import read_frames

    segments = chunk_segments(start, end, options.segment_frames)
    task_id = task_keys.task_id
    done = resume_point(ctx, task_keys, chunk_index, len(segments))
    if done == len(segments):
        return True
    video = load_probe(ctx, task_keys)
    chain = _chain(ctx, task_keys, options)
    gate = _gate(ctx, task_keys, options)
    classifier = content_policy.classifier(ctx)  # None: the content policy is off
    every = ctx.quality_sample_every
    encoder = EncoderSettings(
        codec=ctx.codecs.encoder_for(CODECS[options.codec]),  # NVENC only where the mode allows
        crf=options.crf,
        preset=options.preset,
        pix_fmt=options.pix_fmt,
        threads=ctx.encoder_threads,
    )
    progress = _ProgressReporter(ctx, task_id, chunk_index, segments[done].start - start, on_frame)
    frame_latency = metrics.FRAME_LATENCY.labels(metrics.processor_label(options.processors))
    abort = threading.Event()  # set when the chunk fails: segments in flight stop taking frames
    last_stored = [time.monotonic()]

    def fence() -> None:
        if not still_ours():
            raise LeaseLost(f"chunk {chunk_index} of task {task_id}")

    def run_segment(
        segment: SegmentPlan, frames: Iterator[Frame], previous: Future[None] | None, taken: threading.Event
    ) -> None:
        count = segment.end - segment.start
        latencies: list[float] = []  # each frame's time since the one before it reached the encoder
        began = time.monotonic()
        stem = f"seg-{task_id}-{chunk_index:05d}-{segment.index:05d}"
        inputs: dict[int, np.ndarray] = {}  # the sampled frames' input pixels, for the gate
        figures: Figures | None = None
        screening = Screening()  # the content policy's scores of its sampled input frames
        try:
            with scratch_file(ctx.scratch, stem, ".mp4") as path:  # a name of this attempt's own
                batch = oom.capped(ctx.runtime.inference_batch or options.face_batch)
                taking: Iterator[Frame] = islice(frames, count)
                if classifier is not None:  # on the input, before any processor sees it
                    taking = screen(taking, classifier, ctx.content_policy, every, start, screening)
                if gate is not None:
                    taking = capture(taking, every, inputs)
                ours = _take(_processed(chain, taking, batch), count, taken, abort)
                written = encode_segment(progress.track(ours, latencies), path, video, encoder)
                if written != count:
                    raise RuntimeError(f"segment {segment.index} got {written} of {count} frames")
                if gate is not None and inputs:  # the bytes stored next, decoded back
                    figures = measure_segment(gate, path, segment.start, inputs)
                if previous is not None:
                    previous.result()  # commit order: the segment before is stored and checkpointed
                fence()
                ctx.storage.put_file(task_keys.segment(chunk_index, segment.index), path, on_frame)
        finally:
            taken.set()
        fence()
        records = {  # before the checkpoint: a checkpointed segment has its figures
            **({"quality": figures.to_json()} if figures is not None else {}),
            **({"content_policy": screening.to_json()} if classifier is not None else {}),
        }
        _keep_on_chunk(ctx, task_id, chunk_index, segment.index, records)
        ctx.checkpoints.save(task_id, chunk_index, segment.index + 1, segment.end - start)
        account_segment(ctx, task_keys, chunk_index, count)
        now = time.monotonic()
        ctx.record_work(count, now - last_stored[0])
        last_stored[0] = now
        for latency in latencies:  # counted once stored: the count equals the frames processed
            frame_latency.observe(latency)
        _log_segment(task_id, chunk_index, segment, count, now - began)
        on_frame()  # the checkpoint and the accounting were progress too

    with (
        ctx.storage.hold(target_key) as target,
        closing(
            prefetch(
                read_frames(
                    target,
                    video,
                    segments[done].start,
                    end,
                    decoder_threads(ctx),
                    hw_device=ctx.codecs.decode_device_for(video.codec),
                )
            )
        ) as frames,
        ThreadPoolExecutor(SEGMENTS_IN_FLIGHT, thread_name_prefix="segment") as pool,
    ):
        in_flight: deque[Future[None]] = deque()
        try:
            for segment in segments[done:]:
                if len(in_flight) == SEGMENTS_IN_FLIGHT:
                    in_flight.popleft().result()
                if should_stop() or _task_stopped(ctx, task_id):
                    break
                taken = threading.Event()
                previous = in_flight[-1] if in_flight else None
                # in this thread's context: the segment's log lines carry the task's bound fields
                run = contextvars.copy_context().run
                in_flight.append(pool.submit(run, run_segment, segment, frames, previous, taken))
                taken.wait()  # the next segment takes frames after this one's last
                if in_flight[-1].done():
                    in_flight[-1].result()  # it failed before its last frame: stop here
            else:
                for future in in_flight:
                    future.result()
                return True
            for future in in_flight:
                future.result()
            return False
        finally:
            abort.set()
            wait(in_flight)


def _take(
    frames: Iterator[Frame], count: int, taken: threading.Event, abort: threading.Event
) -> Iterator[Frame]:
    """``frames`` (``count`` of them), with ``taken`` set as the last is handed on: the source
    is then free for the next segment. Stops early when ``abort`` is set."""
    for number, frame in enumerate(frames, 1):
        if abort.is_set():
            return
        if number == count:
            taken.set()
        yield frame


def decoder_threads(ctx: JobContext) -> int:
    """The cores the encoder leaves, at least one. The decoder has a thread of its own
    (``prefetch``) and keeps ahead of the encoder on one core; frame threads beyond the
    machine's cores add synchronisation and frames in flight, not speed (on 2 cores with 4
    encoder threads, a 720p chunk took 0.5-1 % less CPU with one decoder thread than with
    FFmpeg's choice of three; a bare decode -> encode loop 2 %)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - ctx.encoder_threads)


def _log_segment(task_id: str, chunk_index: int, segment: SegmentPlan, count: int, seconds: float) -> None:
    fields: dict[str, object] = {
        "segment": segment.index,
        "frame_start": segment.start,
        "frame_end": segment.end,
        "latency_ms": round(seconds * 1000 / max(1, count), 2),
        "fps": round(count / seconds, 2) if seconds > 0 else None,
    }
    gpu = metrics.gpu_memory_used_bytes()
    if gpu:
        fields["gpu_mem_used_mb"] = round(sum(gpu.values()) / 2**20)
    log.info("segment %d of chunk %d of task %s stored", segment.index, chunk_index, task_id, extra=fields)


def _processed(chain: Chain, frames: Iterator[Frame], batch: int) -> Iterator[Frame]:
    """The frames through the chain, in batches, a batch ahead of the encoder."""
    if chain.empty:
        return frames
    return prefetch((f for group in batched(frames, batch) for f in chain.process(group)), depth=batch)


class _ProgressReporter:
    """Counts frames as they reach the encoder and reports them, at most twice a second;
    ``on_frame`` hears of every one (the lease's stall watch). Two segments' threads share it."""

    def __init__(
        self, ctx: JobContext, task_id: str, chunk_index: int, already: int, on_frame: Callable[[], None]
    ) -> None:
        self._ctx, self._task_id, self._chunk_index = ctx, task_id, chunk_index
        self._on_frame = on_frame
        self.frames = already
        self._last = 0.0
        self._lock = threading.Lock()

    def track(self, frames: Iterator[Frame], latencies: list[float]) -> Iterator[Frame]:
        """``frames``, counted; each frame's time since the one before it (since the start,
        for the first) is added to ``latencies``."""
        previous = time.monotonic()
        for frame in frames:
            yield frame
            self._on_frame()
            now = time.monotonic()
            latencies.append(now - previous)
            previous = now
            with self._lock:
                self.frames += 1
                due = now - self._last >= PROGRESS_INTERVAL_S
                if due:
                    self._last = now
                done = self.frames
            if due:
                self._ctx.checkpoints.report_progress(self._task_id, self._chunk_index, done)


def _chain(ctx: JobContext, task_keys: keys.TaskKeys, options: JobOptions) -> Chain:
    cache_key = ("chain", task_keys.task_id)
    if cache_key not in ctx.cache:
        assets = load_assets(ctx, task_keys) if options.processors else {}
        built = build_chain(options.processors, options.processor_options(), assets, ctx.runtime)
        if ctx.anonymizer_leaves_faces:
            built = Chain([p for p in built.processors if p.name != "face_anonymizer"])
        ctx.cache[cache_key] = with_watermark(ctx, task_keys.task_id, built)
    chain: Chain = ctx.cache[cache_key]
    return chain


def _gate(ctx: JobContext, task_keys: keys.TaskKeys, options: JobOptions) -> Measures | None:
    """The task's quality gate in this process (None: off, or nothing it measures)."""
    if ctx.quality_sample_every <= 0 or not options.processors:
        return None
    cache_key = ("gate", task_keys.task_id)
    if cache_key not in ctx.cache:
        from pipeline.faces.gate import build_gate

        assets = load_assets(ctx, task_keys)
        built = build_gate(options.processors, options.processor_options(), assets, ctx.runtime)
        ctx.cache[cache_key] = None if built is None else gate_of_marked(ctx, task_keys.task_id, built)
    gate: Measures | None = ctx.cache[cache_key]
    return gate


def _task_state(ctx: JobContext, task_id: str) -> TaskState | None:
    with ctx.sessions() as session:
        return session.scalar(select(Task.state).where(Task.id == task_id))


def _task_stopped(ctx: JobContext, task_id: str) -> bool:
    return _task_state(ctx, task_id) != TaskState.RUNNING


def _keep_on_chunk(
    ctx: JobContext, task_id: str, chunk_index: int, segment_index: int, records: dict[str, Any]
) -> None:
    """A stored segment's records (``{column: its JSON}``: quality figures, content-policy
    scores) under ``segments`` in those columns of its chunk's row, in one transaction."""
    if not records:
        return
    with ctx.sessions.begin() as session:
        chunk = session.scalar(
            select(Chunk).where(Chunk.task_id == task_id, Chunk.index == chunk_index).with_for_update()
        )
        if chunk is None:
            return
        for column, value in records.items():
            segments = dict((getattr(chunk, column) or {}).get("segments", {}))
            segments[str(segment_index)] = value
            setattr(chunk, column, {"segments": segments})
