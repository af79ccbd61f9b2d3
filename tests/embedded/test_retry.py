"""Retrying a failed task picks up where it failed: a task whose stitch failed (every chunk
done) is stitched again, without redoing a chunk."""

from pathlib import Path

import av

from facefleet import keys
from facefleet.chunks import ChunkOutcome, process_chunk, stitch_task
from facefleet.embedded import open_context
from facefleet.jobs import create_task, get_task, plan_task, retry_task
from facefleet.options import JobOptions
from facefleet.settings import Settings
from facefleet.states import TaskState

TASK = "retry-after-stitch"


def _segment_files(bucket: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in bucket.glob(f"tasks/{TASK}/work/segments/*/*.mp4")}


def test_retry_after_a_failed_stitch_only_stitches(sample, tmp_path):
    ctx = open_context(Settings(home=tmp_path / "home", keep_work_files=True))
    bucket = tmp_path / "home" / "bucket"
    ctx.storage.put_file(keys.target_key(TASK), sample)
    options = JobOptions(chunk_frames=50, segment_frames=10)
    create_task(ctx, task_id=TASK, target_key=keys.target_key(TASK), source_keys=[], options=options)
    outcomes = [process_chunk(ctx, TASK, index) for index in plan_task(ctx, TASK)]
    assert outcomes[-1] == ChunkOutcome.STITCH

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
    ctx.storage.get_file(keys.output_key(TASK), out)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 100
