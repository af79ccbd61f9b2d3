"""What a run that does not succeed leaves in `FACEFLEET_HOME`: a refused input and a failed
job nothing (no link to the user's file, no row); a failed job run with `--keep-work` stays
listed until `jobs clean`; an interrupted run keeps its work until the rerun finishes it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.harness.cli import REPO, RESUMABLE_JOB, facefleet_cmd, run_cli, stored_segments

# det_10g is declared but never beside the clone: the run fails when its chunks need it
MISSING_MODEL = ["--processors", "face_anonymizer", "--face-detector", "det_10g", "--no-progress"]
NO_MIRRORS = {"FACEFLEET_MODEL_MIRRORS": ""}


def _stored_files(home: Path) -> list[Path]:
    return [p for p in (home / "bucket").rglob("*") if p.is_file()]


def _own_copy(sample: Path, tmp_path: Path) -> Path:
    """The sample as a file of this test's own, so its link count is this test's doing."""
    target = tmp_path / "target.mp4"
    shutil.copyfile(sample, target)
    return target


def test_a_refused_input_leaves_nothing(tmp_path):
    home, bad = tmp_path / "home", tmp_path / "bad.mp4"
    bad.write_text("not a video")
    result = run_cli(home, "run", "--target", str(bad), "--output", str(tmp_path / "out.mp4"))
    assert result.returncode == 1 and "not a readable video file" in result.stderr, result.stderr
    assert _stored_files(home) == [] and bad.stat().st_nlink == 1
    assert "no jobs kept in" in run_cli(home, "jobs", "list").stdout


def test_a_failed_run_removes_what_it_stored(sample, tmp_path):
    home, target = tmp_path / "home", _own_copy(sample, tmp_path)
    out = tmp_path / "out.mp4"
    result = run_cli(
        home, "run", "--target", str(target), "--output", str(out), *MISSING_MODEL, env=NO_MIRRORS
    )
    assert result.returncode == 1 and "det_10g" in result.stderr, result.stderr
    assert _stored_files(home) == [], _stored_files(home)
    assert target.stat().st_nlink == 1  # no hard link to the user's file left in the home
    assert not out.exists()
    assert "no jobs kept in" in run_cli(home, "jobs", "list").stdout


def test_a_failed_run_with_keep_work_stays_until_cleaned(sample, tmp_path):
    home, target = tmp_path / "home", _own_copy(sample, tmp_path)
    args = ["run", "--target", str(target), "--output", str(tmp_path / "out.mp4"), *MISSING_MODEL]
    result = run_cli(home, *args, "--keep-work", env=NO_MIRRORS)
    assert result.returncode == 1 and "det_10g" in result.stderr, result.stderr
    listed = run_cli(home, "jobs", "list").stdout.splitlines()
    assert listed[1].split()[1] == "failed" and listed[1].split()[-1] == target.name, listed
    assert target.stat().st_nlink == 2  # kept: its input linked, as the user asked
    cleaned = run_cli(home, "jobs", "clean")
    assert "1 job(s) removed" in cleaned.stdout, cleaned.stdout
    assert _stored_files(home) == [] and target.stat().st_nlink == 1


def test_an_interrupted_run_keeps_its_work_until_the_rerun_finishes(sample, tmp_path):
    home, target = tmp_path / "home", _own_copy(sample, tmp_path)
    args = ["run", "--target", str(target), "--output", str(tmp_path / "out.mp4"), *RESUMABLE_JOB]
    child = subprocess.Popen(
        facefleet_cmd(*args),
        env=dict(os.environ, FACEFLEET_HOME=str(home)),
        cwd=REPO,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    try:
        while len(stored_segments(home)) < 2:
            assert child.poll() is None, "the job finished before it could be interrupted"
            assert time.monotonic() < deadline, "no segments appeared"
            time.sleep(0.005)
    finally:
        os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and "run the same command again to resume" in stderr, stderr
    kept = stored_segments(home)
    assert len(kept) >= 2 and target.stat().st_nlink == 2
    rerun = run_cli(home, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert _stored_files(home) == [] and target.stat().st_nlink == 1
