"""Byte identity with x264's MB-tree and lookahead on (the ffmpeg CLI's defaults): the same
frames give the same segment bytes, encode after encode in one process, two at once, in
other processes, and while other processes keep every core busy.

MB-tree was once turned off for a seen 1 in 1500 segments encoded differently; the encoder
then ran slice threads (PyAV's default). Now x264 runs frame threads with a fixed count, and
no difference was found in thousands of encodes (README, Known limitations)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.media import make_clip
from tests.pipeline.identity import decoded, digest, encoded

REPO = Path(__file__).resolve().parents[2]
REPEATS = 50
HOGS = 2  # busy processes beside the encodes: thread scheduling then varies from run to run


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("identity")
    return make_clip(folder / "clip.mp4", width=320, height=180, frames=48, gop=250).path


@pytest.fixture
def hogs() -> Iterator[None]:
    """Processes that spin on every core they get, for the length of a test."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


@pytest.mark.parametrize("threads", [4, 1])
def test_repeated_encodes_give_one_output_in_and_across_processes(
    clip: Path, tmp_path: Path, hogs: None, threads: int
) -> None:
    video, frames = decoded(clip)
    first = encoded(frames, video, tmp_path / "first.mp4", threads)
    # MB-tree and the preset's lookahead are on (x264 records its settings in the stream)
    assert b"mbtree=1" in first and b"rc_lookahead=10" in first
    assert f" threads={threads} ".encode() in first  # not lookahead_threads

    digests = {digest(first)}
    for number in range(REPEATS // 2):  # one after another
        digests.add(digest(encoded(frames, video, tmp_path / f"seq-{number}.mp4", threads)))
    with ThreadPoolExecutor(2) as pool:  # two in flight, as a chunk overlaps its segments
        names = [tmp_path / f"pair-{number}.mp4" for number in range(REPEATS - REPEATS // 2 - 1)]
        digests.update(pool.map(lambda out: digest(encoded(frames, video, out, threads)), names))
    assert digests == {digest(first)}

    for number in range(2):  # fresh processes: their own heap, threads and library state
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.pipeline.identity",
                str(clip),
                str(threads),
                str(tmp_path / f"p{number}.mp4"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == digest(first)
