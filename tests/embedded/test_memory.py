"""`facefleet run`'s peak memory, the whole process tree's, does not grow with the video's
length: frames stream from the decoder through the encoders, none are kept."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
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


def _kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            todo.extend(int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split())
    return pids


def _peak_mib(home: Path, target: Path) -> float:
    """The run's peak: the main process's high-water mark, or the tree's sampled sum if higher."""
    out = home.parent / f"{target.stem}-out.mp4"
    env = dict(os.environ, FACEFLEET_HOME=str(home))
    child = subprocess.Popen(
        facefleet_cmd("run", "--target", str(target), "--output", str(out), "--no-progress"),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    peak = 0
    while child.poll() is None:
        pids = _tree(child.pid)
        peak = max(peak, _kib(child.pid, "VmHWM:"), sum(_kib(p, "VmRSS:") for p in pids))
        time.sleep(0.01)
    assert child.returncode == 0
    assert out.stat().st_size > 0
    return peak / 1024


@pytest.mark.timeout(600)
def test_a_five_times_longer_video_peaks_no_higher(tmp_path):
    short = _testsrc(tmp_path / "one-minute.mp4", 60)
    long = _testsrc(tmp_path / "five-minutes.mp4", 300)
    peaks = {
        name: _peak_mib(tmp_path / f"home-{name}", clip) for name, clip in (("short", short), ("long", long))
    }
    assert peaks["long"] <= peaks["short"] * 1.1, peaks
