"""`facefleet run` killed with SIGKILL and started again: it resumes, redoes at most the
segment in flight per chunk, and the output is byte-identical to an uninterrupted run."""

import os
import time

import pytest

from tests.harness.cli import RESUMABLE_JOB as JOB
from tests.harness.cli import run_and_kill, run_cli, stored_segments


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory) -> bytes:
    """An uninterrupted run with one worker."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "out.mp4"
    result = run_cli(tmp / "home", "run", "--target", str(sample), "--output", str(out), *JOB)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_run_resumes_without_redoing_work(sample, tmp_path, reference, workers):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = ["run", "--target", str(sample), "--output", str(out), "--workers", str(workers), *JOB]
    run_and_kill(home, args, after_segments=3)
    assert not out.exists()
    before = stored_segments(home)

    result = run_cli(home, *args, env={"FACEFLEET_KEEP_WORK_FILES": "1"})
    assert result.returncode == 0, result.stderr
    after = stored_segments(home)

    redone: dict[str, int] = {}
    for key, identity in before.items():
        if after[key] != identity:
            chunk = key.split("/")[-2]
            redone[chunk] = redone.get(chunk, 0) + 1
    assert all(count <= 1 for count in redone.values()), redone
    assert len(after) == 20  # 100 frames in segments of 5
    assert out.read_bytes() == reference


def test_output_does_not_depend_on_worker_count(sample, tmp_path, reference):
    out = tmp_path / "out.mp4"
    result = run_cli(
        tmp_path / "home", "run", "--target", str(sample), "--output", str(out), "--workers", "2", *JOB
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference


def test_rerun_of_a_job_kept_with_keep_work_reuses_it(sample, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = ["run", "--target", str(sample), "--output", str(out), "--keep-work", *JOB]
    assert run_cli(home, *args).returncode == 0
    first = out.read_bytes()
    (target,) = (home / "bucket").glob("tasks/*/input/target")
    assert target.stat().st_ino == sample.stat().st_ino  # the input was linked, not copied
    (stored,) = (home / "bucket").glob("tasks/*/output.mp4")
    assert stored.stat().st_ino != out.stat().st_ino  # kept work: the user gets a copy of their own
    out.unlink()
    started = time.monotonic()
    assert run_cli(home, *args).returncode == 0
    assert out.read_bytes() == first
    assert time.monotonic() - started < 10


def test_a_run_leaves_nothing_behind_but_its_output(sample, tmp_path, reference):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = ["run", "--target", str(sample), "--output", str(out), *JOB]
    assert run_cli(home, *args).returncode == 0
    assert out.read_bytes() == reference
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, though it was the stored one
    assert not [p for p in (home / "bucket").rglob("*") if p.is_file()]
    assert not [p for p in (home / "work").rglob("*") if p.is_file()]
    assert sample.exists()  # the input itself is the user's
    out.unlink()
    assert run_cli(home, *args).returncode == 0  # run again: done afresh, the same bytes
    assert out.read_bytes() == reference


def test_a_run_interrupted_twelve_times_still_finishes(sample, tmp_path, reference):
    """Each interruption is the user's own stop, not a lost worker: the one chunk, killed
    mid-way twelve times (more than the lost-worker budget of 10), still finishes."""
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    one_chunk = ["--processors", "none", "--chunk-frames", "100", "--segment-frames", "5", "--no-progress"]
    args = ["run", "--target", str(sample), "--output", str(out), *one_chunk]  # 20 segments, one chunk
    for interruption in range(12):
        run_and_kill(home, args, after_segments=interruption + 1)
    result = run_cli(home, *args, env={"FACEFLEET_KEEP_WORK_FILES": "1"})
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference
