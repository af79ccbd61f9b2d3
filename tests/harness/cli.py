"""The ``facefleet`` command as the tests run it, in a child process with a home of its own:
one run to completion (``run_cli``), or one killed with SIGKILL once it has stored a number
of segments (``run_and_kill``), and the segment files a home holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# a small embedded job: 100 frames in chunks of 30, segments of 5, no progress bar
RESUMABLE_JOB = ["--processors", "none", "--chunk-frames", "30", "--segment-frames", "5", "--no-progress"]


def facefleet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, FACEFLEET_HOME=str(home), **(env or {}))
    return subprocess.run(
        facefleet_cmd(*args), env=environment, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def stored_segments(home: Path) -> dict[str, tuple[int, int]]:
    """Stored segment files -> (inode, mtime): a rewrite replaces the file, so both change."""
    root = home / "bucket"
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.glob("tasks/*/work/segments/*/*.mp4")
    }


def run_and_kill(home: Path, args: list[str], after_segments: int) -> None:
    """``facefleet ARGS`` (work files kept), SIGKILLed once ``after_segments`` are stored."""
    env = dict(os.environ, FACEFLEET_HOME=str(home), FACEFLEET_KEEP_WORK_FILES="1")
    child = subprocess.Popen(facefleet_cmd(*args), env=env, cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while len(stored_segments(home)) < after_segments:
            assert child.poll() is None, "the job finished before it could be interrupted"
            assert time.monotonic() < deadline, "no segments appeared"
            time.sleep(0.005)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


REAL_DETECTORS = ("det_500m.onnx", "face_detection_yunet_2026may.onnx")


def shared_models() -> Path:
    """The folder of real detector weights (FACEFLEET_TEST_MODELS, else ../shared/models)."""
    return Path(os.environ.get("FACEFLEET_TEST_MODELS", REPO.parent / "shared" / "models"))


def real_detectors() -> Path:
    """``shared_models()`` where both real detectors are in it; else the calling test skips
    (fails under CI=true, where they must be)."""
    folder = shared_models()
    missing = [name for name in REAL_DETECTORS if not (folder / name).is_file()]
    if missing:
        message = (
            f"real detector models missing from {folder}: {', '.join(missing)} (set FACEFLEET_TEST_MODELS)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder
