"""`facefleet run --target FOLDER`: every video of the folder as one embedded batch, one output
per item named after its input and a line per item; killed after the first item and run
again, the first item is not redone; a broken file fails its own item only."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from facefleet.modes.demo import make_sample_video
from tests.harness.cli import REPO, facefleet_cmd, run_cli

JOB = ["--processors", "none", "--chunk-frames", "25", "--segment-frames", "5", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three different clips (3, 4 and 5 seconds)."""
    root = tmp_path_factory.mktemp("videos")
    for name, seconds in (("a", 3), ("b", 4), ("c", 5)):
        make_sample_video(root / f"{name}.mp4", seconds=seconds, width=160, height=90)
    return root


def _identity(path: Path) -> tuple[int, int]:
    return path.stat().st_ino, path.stat().st_mtime_ns


def test_a_folder_runs_as_a_batch_and_a_killed_batch_does_not_redo_its_finished_items(folder, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    args = ["run", "--target", str(folder), "--output", str(out), *JOB]
    env = dict(os.environ, FACEFLEET_HOME=str(home))
    child = subprocess.Popen(
        facefleet_cmd(*args), env=env, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        first_line = (
            child.stdout.readline()
        )  # the first item reported done (stdout is piped, and flushed per line)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert first_line.startswith("a.mp4: succeeded"), first_line
    assert not (out / "c.mp4").exists()  # killed mid-batch
    first = _identity(out / "a.mp4")

    result = run_cli(home, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"a.mp4: done before, not redone -> {out / 'a.mp4'}" in lines
    assert f"b.mp4: succeeded -> {out / 'b.mp4'}" in lines
    assert f"c.mp4: succeeded -> {out / 'c.mp4'}" in lines
    assert lines[-1] == "3 of 3 items succeeded, 0 failed"
    assert _identity(out / "a.mp4") == first  # not written again

    # each output is the one a single run of its input gives
    for name in ("a", "b", "c"):
        single = tmp_path / f"single-{name}.mp4"
        one = run_cli(
            tmp_path / "home-single",
            "run",
            "--target",
            str(folder / f"{name}.mp4"),
            "--output",
            str(single),
            *JOB,
        )
        assert one.returncode == 0, one.stderr
        assert (out / f"{name}.mp4").read_bytes() == single.read_bytes(), name

    again = run_cli(home, *args)  # all done: nothing is redone
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before, not redone") == 3
    assert _identity(out / "a.mp4") == first


def test_repeated_targets_and_a_broken_one_fail_only_that_item(folder, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(folder / "a.mp4"),
        "--target",
        str(broken),
        "--target",
        str(folder / "b.mp4"),
        "--output",
        str(out),
        *JOB,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("a.mp4: succeeded")
    assert lines[1].startswith("broken.mp4: failed: ") and len(lines[1]) > len("broken.mp4: failed: ")
    assert lines[2].startswith("b.mp4: succeeded")
    assert lines[-1] == "2 of 3 items succeeded, 1 failed"
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]


def test_a_batch_refuses_an_output_file_and_clashing_names(folder, tmp_path):
    a_file = tmp_path / "file.mp4"
    a_file.write_bytes(b"x")
    result = run_cli(tmp_path / "home", "run", "--target", str(folder), "--output", str(a_file), *JOB)
    assert result.returncode == 1 and "is a file" in result.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mp4").write_bytes((folder / "a.mp4").read_bytes())
    clash = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(folder / "a.mp4"),
        "--target",
        str(other / "a.mp4"),
        "--output",
        str(tmp_path / "o"),
        *JOB,
    )
    assert clash.returncode == 1 and "would both be written to" in clash.stderr
    assert "Traceback" not in result.stderr + clash.stderr
