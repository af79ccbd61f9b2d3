"""Killing `facefleet run` (kill -9, a plain kill) leaves none of its processes running, and
the rerun's progress bar starts at the frames stored, only moves forward and counts this
run's rate. Only the parent is signalled, as a user's `kill PID` does; the tests never kill
the process group."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facefleet.modes.demo import make_sample_video
from facefleet.modes.local_children import end_survivors
from tests.harness.cli import REPO, facefleet_cmd, run_cli

SEGMENT = 10
JOB = ["--processors", "none", "--chunk-frames", "50", "--segment-frames", str(SEGMENT), "--preset", "slower"]


@pytest.fixture(scope="module")
def long_sample(tmp_path_factory) -> Path:
    """20 s of 320x180 (500 frames): ten chunks, so two workers are busy for a while."""
    return make_sample_video(tmp_path_factory.mktemp("long") / "long.mp4", seconds=20, width=320, height=180)


def _segments(home: Path) -> list[Path]:
    return list((home / "bucket").glob("tasks/*/work/segments/*/*.mp4"))


def _checkpointed_segments(home: Path) -> int:
    with sqlite3.connect(home / "facefleet.db") as db:
        return int(db.execute("SELECT COALESCE(SUM(segments_done), 0) FROM chunks").fetchone()[0])


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _session(sid: int) -> set[int]:
    """The live (not zombie) processes of session ``sid``: the run and everything it started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
                found.add(int(entry.name))
    return found


def _start_and_signal(home: Path, args: list[str], signum: int) -> tuple[subprocess.Popen, set[int]]:
    """Start the run in a session of its own, wait until both workers have stored segments,
    send ``signum`` to the run's own process only; returns it and the processes it had."""
    env = dict(os.environ, FACEFLEET_HOME=str(home), FACEFLEET_KEEP_WORK_FILES="1")
    run = subprocess.Popen(
        facefleet_cmd(*args), env=env, cwd=REPO, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(_segments(home)) < 4 or len(_session(run.pid)) < 3:  # the run, its two workers
        assert run.poll() is None, "the job finished before it could be interrupted"
        assert time.monotonic() < deadline, "no segments appeared"
        time.sleep(0.01)
    tree = _session(run.pid)
    os.kill(run.pid, signum)
    return run, tree


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while True:
        alive = {pid for pid in pids if (_stat(pid) or ["Z"])[0] != "Z"}
        if not alive or time.monotonic() > deadline:
            return alive


def _bar_points(stderr: str) -> list[tuple[int, float | None]]:
    """(frames, rate) of every state the bar showed."""
    points = []
    for match in re.finditer(r"(\d+)/(\d+) \[[^,\]]*, *([-\d.?]+)frame/s\]", stderr):
        rate = match.group(3)
        points.append((int(match.group(1)), None if "?" in rate else float(rate)))
    return points


def test_kill_9_leaves_no_process_and_the_rerun_bar_moves_forward(long_sample, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = ["run", "--target", str(long_sample), "--output", str(out), "--workers", "2", *JOB]
    run, tree = _start_and_signal(home, args, signal.SIGKILL)
    try:
        run.wait(10)
        assert len(tree) >= 3, tree
        assert _gone_within(tree, 2.0) == set(), "processes of the killed run still run"
    finally:
        for pid in _session(run.pid):
            os.kill(pid, signal.SIGKILL)
    # what the killed run checkpointed: a segment in the bucket whose checkpoint the kill beat
    # (the window holds its upload and its quality sample) is redone, so it is not counted
    stored = _checkpointed_segments(home) * SEGMENT  # every segment here is SEGMENT frames long

    rerun = run_cli(home, *args, env={"FACEFLEET_KEEP_WORK_FILES": "1"}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    points = _bar_points(rerun.stderr)
    frames = [n for n, _ in points]
    assert frames and frames[0] == stored and frames[-1] == 500, rerun.stderr
    assert frames == sorted(frames), f"the bar moved back: {frames}"
    done = re.search(r"done: 500 frames in ([\d.]+) s", rerun.stderr)
    assert done, rerun.stderr
    # this run's rate: frames it processed over its own time, never what an earlier run did
    ceiling = (500 - stored) / 0.5  # no bar state comes earlier than half a second in
    assert all(rate is None or 0 <= rate <= ceiling for _, rate in points), points


def test_a_plain_kill_stops_the_run_and_its_workers(long_sample, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = [
        "run",
        "--target",
        str(long_sample),
        "--output",
        str(out),
        "--workers",
        "2",
        "--no-progress",
        *JOB,
    ]
    run, tree = _start_and_signal(home, args, signal.SIGTERM)
    try:
        _, stderr = run.communicate(timeout=10)
        assert run.returncode == 130 and "run the same command again to resume" in stderr, stderr
        assert _gone_within(tree, 2.0) == set()
    finally:
        for pid in _session(run.pid):
            os.kill(pid, signal.SIGKILL)
    assert not out.exists()


def test_a_rerun_ends_survivors_a_previous_run_recorded(tmp_path):
    """A child that outlived its run (started as its parent died, or where the kernel has no
    parent-death signal) is recorded by pid and start time; the next run ends it."""
    folder = tmp_path / "children"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from facefleet.modes.local_children import record_child\n"
        "record_child(Path(sys.argv[1]))\n"
        "print('recorded', flush=True)\n"
        "time.sleep(120)\n"
    )
    survivor = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert survivor.stdout is not None and survivor.stdout.readline().strip() == "recorded"
        assert end_survivors(folder) == [survivor.pid]
        assert survivor.wait(5) == -signal.SIGKILL
        assert list(folder.iterdir()) == []
    finally:
        survivor.kill()
        survivor.wait()


def test_a_record_of_a_reused_pid_is_left_alone(tmp_path):
    """A record whose pid now belongs to another process (another start time) kills nothing."""
    folder = tmp_path / "children"
    folder.mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (folder / str(bystander.pid)).write_text("1")  # started at another time
        assert end_survivors(folder) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
