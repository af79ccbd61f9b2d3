"""`facefleet run`'s peak memory does not grow with the video's length: frames stream from
the decoder through the encoders, none are kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ffmpeg_media import ffmpeg
from tests.harness.cli import REPO, facefleet_cmd
from tests.peak_memory import peak_mib


def _testsrc(path: Path, seconds: int) -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=160x96:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


def _peak_mib(home: Path, target: Path) -> float:
    out = home.parent / f"{target.stem}-out.mp4"
    command = facefleet_cmd("run", "--target", str(target), "--output", str(out), "--no-progress")
    peak = peak_mib(command, dict(os.environ, FACEFLEET_HOME=str(home)), REPO)
    assert out.stat().st_size > 0
    return peak


@pytest.mark.timeout(600)
def test_a_five_times_longer_video_peaks_no_higher(tmp_path):
    short = _testsrc(tmp_path / "one-minute.mp4", 60)
    long = _testsrc(tmp_path / "five-minutes.mp4", 300)
    peaks = {
        name: _peak_mib(tmp_path / f"home-{name}", clip) for name, clip in (("short", short), ("long", long))
    }
    assert peaks["long"] <= peaks["short"] * 1.1, peaks
