"""Planning a task: the target probed, the processors prepared once, the probe and their
assets stored for the chunks, then the chunk rows written and the task moved to running in
one transaction; and ``load_probe`` / ``load_assets``, which read back what the plan stored
(the chunks and the stitch).

Kept apart from the task's state changes (``facefleet.task.jobs``), which planning calls and
which never call planning: those are database moves, this is the media work of one step.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from contextlib import ExitStack

from sqlalchemy import delete

from facefleet.config.context import JobContext
from facefleet.config.errors import TaskNotFound, TryLater
from facefleet.config.options import JobOptions, check_plan_size
from facefleet.observability import logs
from facefleet.records import keys
from facefleet.records.db import Chunk, Task, utcnow
from facefleet.records.states import TaskState
from facefleet.storage.scratch import scratch_dir
from facefleet.task.cleanup import clean_up
from facefleet.task.failures import describe, infrastructure
from facefleet.task.jobs import fail_task, move_task, patience_left, pending_chunks
from facefleet.tenants.max_running import admitted
from pipeline.plan import ChunkPlan, frame_range, plan_chunks
from pipeline.probe import VideoProbe, probe
from pipeline.processors import Assets, JobInputs, prepare_chain

log = logging.getLogger(__name__)


def remember_probe(ctx: JobContext, task_id: str, video: VideoProbe) -> None:
    """The target as the submission's sandbox probed it, for a planning in this same process
    (the embedded run): it takes this one instead of probing the file again."""
    ctx.cache[_probed(task_id)] = video


def _probed(task_id: str) -> tuple[str, str]:
    return ("probe", task_id)


def plan_task(
    ctx: JobContext,
    task_id: str,
    on_progress: Callable[[], None] = lambda: None,
    still_ours: Callable[[], bool] = lambda: True,
) -> list[int]:
    """Probe the target, prepare the processors once, write the chunk rows.

    Returns the indices of the chunks to process. Bad input fails the task with a reason and
    returns []. Safe to call twice: a plan found complete is not redone. ``on_progress``
    (the planner's lease) hears of each step and of the plan's upload going on; a planner
    whose lease is lost (``still_ours``) stores and commits nothing more.
    """
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        logs.bind(tenant=task.tenant)
        if task.state == TaskState.RUNNING:  # a redelivered planning message
            return pending_chunks(session, task_id)
        if task.state == TaskState.QUEUED and not admitted(session, task):
            log.info("task %s waits: its tenant runs as many tasks as it may", task_id)
            return []  # stays queued; the reaper releases it when a running task ends
        # planning -> planning: the planner died mid-plan; the plan is simply redone
        if task.state != TaskState.PLANNING and not move_task(
            session, task_id, TaskState.PLANNING, started_at=utcnow()
        ):
            return []
        options = JobOptions.model_validate(task.options)
        source_keys, ref_key, target = list(task.source_keys), task.reference_key, task.target_key
        task_keys = keys.of(task)
        target_name = task.target_name or "target"
        failing_since = task.infra_failing_since
    names: dict[str, str] = {}

    def step(phase: str) -> None:
        ctx.set_phase(task_id, phase, None)
        on_progress()

    try:
        with ExitStack() as held:
            step("probing")
            target_path = held.enter_context(ctx.storage.hold(target))
            names[target_path.name] = target_name
            video = ctx.cache.pop(_probed(task_id), None) or probe(target_path, ctx.limits)
            step("planning")
            start, end = frame_range(video.frame_count, options.trim_start, options.trim_end)
            check_plan_size(
                options,
                end - start,
                max_chunks=ctx.max_chunks_per_task,
                max_segments=ctx.max_segments_per_task,
            )
            chunk_frames = _chunk_frames(video, start, end, options.chunk_frames, ctx.max_chunk_s)
            chunk_plans = plan_chunks(start, end, chunk_frames, options.segment_frames)
            inputs = JobInputs(
                sources=tuple(held.enter_context(ctx.storage.hold(k)) for k in source_keys),
                reference=held.enter_context(ctx.storage.hold(ref_key)) if ref_key else None,
                limits=ctx.limits,
            )
            assets = prepare_chain(options.processors, options.processor_options(), inputs, ctx.runtime)
            if not still_ours():
                return _lease_lost(task_id)
            _store_plan(ctx, task_keys, video, assets if options.processors else None, on_progress)
    except Exception as exc:  # a bad input, a full disk, a bucket down for too long: the task says so
        log.warning("planning task %s failed: %r", task_id, exc, exc_info=True)
        service = infrastructure(exc)
        if service is not None and patience_left(ctx, task_id, failing_since):
            raise TryLater(service) from exc
        reason = describe(exc, names, keep_paths=ctx.errors_keep_paths)
        fail_task(ctx, task_id, f"{service} was unavailable too long: {reason}" if service else reason)
        return []
    if not still_ours():
        return _lease_lost(task_id)
    try:
        _commit_plan(ctx, task_id, video, chunk_plans, start, end)
    except _NoLongerPlanning:  # cancelled meanwhile: no chunk rows, and what planning stored goes
        clean_up(ctx, task_id, busy=lambda _task_id: False)  # nothing else writes its files
        return []
    log.info("task %s planned: frames %d-%d in %d chunks", task_id, start, end, len(chunk_plans))
    return [plan.index for plan in chunk_plans]


def _lease_lost(task_id: str) -> list[int]:
    """The planner's lease is lost: another planner goes on, this one writes nothing more."""
    log.warning("planning of task %s lost its lease: another planner goes on", task_id)
    return []


def _chunk_frames(video: VideoProbe, start: int, end: int, asked: int, max_chunk_s: float) -> int:
    """``asked``, or fewer frames where that many would last longer than ``max_chunk_s``
    (so a long video is always spread over workers, and one chunk never holds one for
    hours); measured on the range's own timestamps, so variable frame rates count right."""
    seconds = float(video.seconds(end) - video.seconds(start))
    if seconds <= 0:
        return asked
    per_second = (end - start) / seconds
    return max(1, min(asked, int(per_second * max_chunk_s + 1e-6)))


class _NoLongerPlanning(Exception):
    pass


def _commit_plan(
    ctx: JobContext, task_id: str, video: VideoProbe, chunk_plans: list[ChunkPlan], start: int, end: int
) -> None:
    """The chunk rows and the move to running, in one transaction (rolled back unless the
    task is still planning)."""
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise _NoLongerPlanning
        session.execute(delete(Chunk).where(Chunk.task_id == task_id))
        session.add_all(
            Chunk(
                task_id=task_id,
                index=plan.index,
                frame_start=plan.start,
                frame_end=plan.end,
                segments_total=len(plan.segments),
                tenant=task.tenant,
                priority=task.priority,
                submitted_at=task.created_at,
            )
            for plan in chunk_plans
        )
        summary = {k: v for k, v in video.to_dict().items() if k != "frame_pts"}
        summary["frame_count"] = video.frame_count
        if not move_task(
            session,
            task_id,
            TaskState.RUNNING,
            probe=summary,
            frame_start=start,
            frame_end=end,
            frames_total=end - start,
            chunks_total=len(chunk_plans),
            infra_failing_since=None,
        ):
            raise _NoLongerPlanning


def _store_plan(
    ctx: JobContext,
    task_keys: keys.TaskKeys,
    video: VideoProbe,
    assets: Assets | None,
    on_progress: Callable[[], None],
) -> None:
    """The probe, and the processors' assets (None: the job has no processors, so no chunk
    ever loads them); ``on_progress`` hears of the uploads going on."""
    with scratch_dir(ctx.scratch, f"plan-{task_keys.task_id}") as scratch:
        probe_file = scratch / "probe.json"
        probe_file.write_text(json.dumps(video.to_dict()))
        ctx.storage.put_file(task_keys.probe, probe_file, on_progress)
        if assets is None:
            return
        import numpy as np  # not imported by a job without processors

        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **assets)
        assets_file = scratch / "assets.npz"
        assets_file.write_bytes(buffer.getvalue())
        ctx.storage.put_file(task_keys.assets, assets_file, on_progress)


def load_probe(ctx: JobContext, task_keys: keys.TaskKeys) -> VideoProbe:
    cache_key = ("probe", task_keys.task_id)
    if cache_key not in ctx.cache:
        with ctx.storage.hold(task_keys.probe) as path:
            text = path.read_text()
        ctx.cache[cache_key] = VideoProbe.from_dict(json.loads(text))
    found: VideoProbe = ctx.cache[cache_key]
    return found


def load_assets(ctx: JobContext, task_keys: keys.TaskKeys) -> Assets:
    import numpy as np

    with ctx.storage.hold(task_keys.assets) as path, np.load(path) as archive:
        return {name: archive[name] for name in archive.files}
