"""`facefleet run`'s peak memory does not grow with the video's length: frames stream from
the decoder through the encoders, none are kept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.embedded.conftest import REPO, facefleet_cmd
from tests.ffmpeg_media import ffmpeg


def _testsrc(path: Path, seconds: int) -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=160x96:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


def _peak_mib(home: Path, target: Path) -> float:
    """The run's peak: the high-water mark of the largest process of its tree (the one the
    frames go through), as the kernel reports it when the run is reaped (wait4 folds every
    reaped descendant in). Nothing is sampled, so no short-lived peak is missed or caught by
    chance, and pages a child shares with its parent between fork and exec count once."""
    out = home.parent / f"{target.stem}-out.mp4"
    env = dict(os.environ, FACEFLEET_HOME=str(home))
    child = subprocess.Popen(
        facefleet_cmd("run", "--target", str(target), "--output", str(out), "--no-progress"),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0
    assert out.stat().st_size > 0
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.timeout(600)
def test_a_five_times_longer_video_peaks_no_higher(tmp_path):
    short = _testsrc(tmp_path / "one-minute.mp4", 60)
    long = _testsrc(tmp_path / "five-minutes.mp4", 300)
    peaks = {
        name: _peak_mib(tmp_path / f"home-{name}", clip) for name, clip in (("short", short), ("long", long))
    }
    assert peaks["long"] <= peaks["short"] * 1.1, peaks
