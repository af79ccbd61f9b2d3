"""The job core recovers where it can: a retried task picks up where it failed, a chunk set
back under a worker that then finishes counts as done, an old holder's failure leaves the
chunk's new holder alone, a chunk whose checkpoint store is unreachable still runs (Redis is
for speed, not truth), and a task cancelled while planning leaves nothing behind."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import av
from sqlalchemy import update

from facefleet.config.context import JobContext
from facefleet.config.options import JobOptions
from facefleet.config.settings import Settings
from facefleet.fleet.redis_state import RedisState
from facefleet.modes.embedded import open_context
from facefleet.records import keys
from facefleet.records.db import Chunk
from facefleet.records.states import ChunkState, TaskState
from facefleet.storage.local import LocalStorage
from facefleet.task.chunk_outcomes import ChunkOutcome
from facefleet.task.chunks import process_chunk
from facefleet.task.jobs import cancel_task, create_task, get_task, retry_task
from facefleet.task.planning import plan_task
from facefleet.task.segments import resume_point
from facefleet.task.stitching import stitch_task
from tests.harness.net import free_port

TASK = "recovery"


def _create(ctx: JobContext, sample: Path, options: JobOptions) -> None:
    ctx.storage.put_file(keys.TaskKeys(TASK).target, sample)
    create_task(ctx, task_id=TASK, target_key=keys.TaskKeys(TASK).target, source_keys=[], options=options)


def _planned_one_chunk(ctx: JobContext, sample: Path) -> None:
    """The sample's 100 frames as one chunk of four segments, planned, not yet processed."""
    _create(ctx, sample, JobOptions(chunk_frames=100, segment_frames=25))
    assert plan_task(ctx, TASK) == [0]


def _segment_files(bucket: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in bucket.glob(f"tasks/{TASK}/work/segments/*/*.mp4")}


def test_retry_after_a_failed_stitch_only_stitches(sample, tmp_path):
    ctx = open_context(Settings(home=tmp_path / "home", keep_work_files=True))
    bucket = tmp_path / "home" / "bucket"
    _create(ctx, sample, JobOptions(chunk_frames=50, segment_frames=10))
    outcomes = [process_chunk(ctx, TASK, index) for index in plan_task(ctx, TASK)]
    assert outcomes[-1] == ChunkOutcome.STITCH
    assert get_task(ctx, TASK).frames_processed == 100

    segments = _segment_files(bucket)
    missing = next(iter(segments))
    aside = tmp_path / "aside.mp4"
    missing.rename(aside)
    stitch_task(ctx, TASK)
    failed = get_task(ctx, TASK)
    assert failed.state == TaskState.FAILED and "stitch failed" in (failed.error or "")

    aside.rename(missing)  # whatever broke the stitch is mended
    plan = retry_task(ctx, TASK)
    assert (plan.step, plan.chunks) == (TaskState.STITCHING, ())
    assert get_task(ctx, TASK).state == TaskState.STITCHING
    stitch_task(ctx, TASK)
    done = get_task(ctx, TASK)
    assert done.state == TaskState.SUCCEEDED and done.error is None
    assert _segment_files(bucket) == segments  # no segment written again
    out = tmp_path / "out.mp4"
    ctx.storage.get_file(keys.TaskKeys(TASK).output, out)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 100


def test_a_holder_that_finishes_after_its_chunk_was_set_back_still_counts(sample, tmp_path):
    """The chunk is set back to queued while its worker is mid-way (its lease was lost, or
    the task was retried); the worker still finishes every segment: the chunk is done, not
    left queued with its only message spent."""
    ctx = open_context(Settings(home=tmp_path / "home"))
    _planned_one_chunk(ctx, sample)

    def set_back() -> bool:
        with ctx.sessions.begin() as session:
            session.execute(update(Chunk).where(Chunk.task_id == TASK).values(state=ChunkState.QUEUED))
        return False

    assert process_chunk(ctx, TASK, 0, should_stop=set_back) == ChunkOutcome.STITCH
    assert get_task(ctx, TASK).state == TaskState.STITCHING


def test_a_chunk_runs_while_its_checkpoint_store_is_unreachable(sample, tmp_path):
    ctx = open_context(Settings(home=tmp_path / "home"))
    dead = RedisState.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    ctx = dataclasses.replace(ctx, checkpoints=dead.checkpoints)
    _planned_one_chunk(ctx, sample)
    assert process_chunk(ctx, TASK, 0) == ChunkOutcome.STITCH
    assert len(_segment_files(tmp_path / "home" / "bucket")) == 4  # every segment stored
    # nothing the store says can be read: the resume point comes from the bucket's listing
    assert dead.checkpoints.load(TASK, 0) is None
    assert resume_point(ctx, keys.TaskKeys(TASK), 0, 4) == 4
    stitch_task(ctx, TASK)
    assert get_task(ctx, TASK).state == TaskState.SUCCEEDED


def test_a_task_cancelled_while_planning_keeps_no_chunks_or_files(sample, tmp_path):
    ctx = open_context(Settings(home=tmp_path / "home"))

    class CancelOnPlanUpload(LocalStorage):
        """The user's cancel arrives while the planner stores its probe."""

        def put_file(self, key: str, path: Path, progress: Callable[[], None] | None = None) -> None:
            super().put_file(key, path, progress)
            if key == keys.TaskKeys(TASK).probe:
                cancel_task(ctx, TASK)

    ctx = dataclasses.replace(ctx, storage=CancelOnPlanUpload(tmp_path / "home" / "bucket"))
    _create(ctx, sample, JobOptions())
    assert plan_task(ctx, TASK) == []
    assert get_task(ctx, TASK).state == TaskState.CANCELLED
    with ctx.sessions() as session:
        assert session.query(Chunk).filter_by(task_id=TASK).count() == 0
    assert ctx.storage.list(keys.TaskKeys(TASK).prefix) == []


def test_a_failure_after_the_chunk_was_taken_over_leaves_the_new_holder_alone(sample, tmp_path):
    """The old holder of a chunk (its lease lost, another worker took the chunk) then fails:
    its failure must not set the new holder's running chunk back to queued."""
    ctx = open_context(Settings(home=tmp_path / "home"))
    _planned_one_chunk(ctx, sample)

    def taken_over_then_failing() -> bool:
        with ctx.sessions.begin() as session:
            session.execute(update(Chunk).where(Chunk.task_id == TASK).values(worker="another:1"))
        raise OSError("the old holder's disk failed")

    assert process_chunk(ctx, TASK, 0, should_stop=taken_over_then_failing) == ChunkOutcome.SKIPPED
    with ctx.sessions() as session:
        chunk = session.query(Chunk).filter_by(task_id=TASK).one()
        assert (chunk.state, chunk.worker, chunk.error) == (ChunkState.RUNNING, "another:1", None)


def test_chunks_hold_at_most_max_chunk_s_of_video(sample, tmp_path):
    """A chunk size asking for the whole video is cut to FACEFLEET_MAX_CHUNK_S of it, so a
    long video is always spread over workers."""
    ctx = open_context(Settings(home=tmp_path / "home", max_chunk_s=1.0))
    _create(ctx, sample, JobOptions(chunk_frames=100_000, segment_frames=10))
    chunks = plan_task(ctx, TASK)
    fps = 25  # the sample's rate
    assert len(chunks) == -(-100 // fps)  # 100 frames in chunks of one second
    with ctx.sessions() as session:
        sizes = [c.frame_count for c in session.query(Chunk).filter_by(task_id=TASK).order_by(Chunk.index)]
    assert sizes == [25, 25, 25, 25]
