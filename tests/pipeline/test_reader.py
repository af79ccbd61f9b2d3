from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InvalidMediaError, InvalidRangeError
from pipeline.probe import probe
from pipeline.reader import read_frames
from tests.media import Clip, frame_index, make_clip, make_faststart, make_truncated


def _ranges(count: int) -> list[tuple[int, int]]:
    return [(0, count), (0, 1), (count - 1, count), (5, 17), (13, 14), (11, count - 3), (count // 2, count)]


def test_ranges_are_exact(clips: dict[str, Clip], kind: str) -> None:
    clip = clips[kind]
    video = probe(clip.path)
    for start, end in _ranges(clip.frames):
        frames = list(read_frames(clip.path, video, start, end))
        assert [f.index for f in frames] == list(range(start, end))
        assert [f.pts for f in frames] == list(video.frame_pts[start:end])
        assert [frame_index(f.to_video_frame()) for f in frames] == list(range(start, end))


@pytest.mark.parametrize("kind", ["open_gop", "bframes", "vfr_mkv_pcm"])
def test_every_start(clips: dict[str, Clip], kind: str) -> None:
    """Short reads from every frame: some seeks land on a keyframe after the wanted frame
    (an open GOP's leading B-frames) and must be redone from earlier."""
    clip = clips[kind]
    video = probe(clip.path)
    for start in range(clip.frames):
        end = min(clip.frames, start + 2)
        frames = list(read_frames(clip.path, video, start, end))
        assert [frame_index(f.to_video_frame()) for f in frames] == list(range(start, end))


def test_partial_consumption(clips: dict[str, Clip]) -> None:
    clip = clips["bframes"]
    video = probe(clip.path)
    frames = read_frames(clip.path, video, 20, 40)
    assert next(frames).index == 20
    frames.close()


def test_empty_and_bad_ranges(clips: dict[str, Clip]) -> None:
    clip = clips["cfr"]
    video = probe(clip.path)
    assert list(read_frames(clip.path, video, 3, 3)) == []
    with pytest.raises(InvalidRangeError):
        list(read_frames(clip.path, video, 0, video.frame_count + 1))
    with pytest.raises(InvalidRangeError):
        list(read_frames(clip.path, video, -1, 3))


def test_truncated_after_probe(tmp_path: Path) -> None:
    """The file lost its tail after probing: the reader names the first frame it cannot give."""
    clip = make_clip(tmp_path / "whole.mp4", frames=60, bframes=True)
    fast = make_faststart(clip.path, tmp_path / "fast.mp4")
    video = probe(fast)
    cut = make_truncated(fast, tmp_path / "fast-cut.mp4", 0.5)
    with pytest.raises(InvalidMediaError, match=r"frame \d+"):
        list(read_frames(cut, video, 0, 60))
    assert [f.index for f in read_frames(cut, video, 0, 5)] == list(range(5))
