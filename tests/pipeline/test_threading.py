"""Threads never change a byte: the reader's frame-threaded decoding gives the pixels of a
single-threaded decode, and segments encoded side by side (as a chunk overlaps them) give the
same bytes as one encoded alone."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest

from pipeline.encode import EncoderSettings, encode_segment
from pipeline.probe import probe
from pipeline.reader import read_frames
from tests.media import Clip, make_clip


def _digest(frame: av.VideoFrame) -> str:
    return hashlib.sha256(b"".join(bytes(plane) for plane in frame.planes)).hexdigest()


def _single_threaded(path: Path) -> dict[int, str]:
    """pts -> pixel digest, decoded from the start by one thread."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "NONE", 1
        return {frame.pts: _digest(frame) for frame in container.decode(stream) if frame.pts is not None}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    folder = tmp_path_factory.mktemp("threading")
    return make_clip(folder / "clip.mp4", width=640, height=360, frames=48, bframes=True, gop=12)


@pytest.mark.parametrize("kind", ["bframes", "open_gop", "vfr"])
def test_frame_threaded_reads_match_a_single_threaded_decode(clips: dict[str, Clip], kind: str) -> None:
    path = clips[kind].path
    video = probe(path)
    reference = _single_threaded(path)
    count = video.frame_count
    for start, end in [(0, count), (5, 17), (count // 2, count), (count - 1, count)] * 2:
        for frame in read_frames(path, video, start, end):
            assert _digest(frame.to_video_frame()) == reference[frame.pts], (kind, frame.index)


def test_segments_encoded_side_by_side_are_byte_identical(clip: Clip, tmp_path: Path) -> None:
    video = probe(clip.path)
    settings = EncoderSettings(threads=4)

    def encode(name: str) -> bytes:
        out = tmp_path / f"{name}.mp4"
        assert (
            encode_segment(read_frames(clip.path, video, 0, clip.frames), out, video, settings) == clip.frames
        )
        return out.read_bytes()

    alone = encode("alone")
    with ThreadPoolExecutor(2) as pool:
        side_by_side = list(pool.map(encode, [f"pair-{n}" for n in range(6)]))
    assert all(data == alone for data in side_by_side)
