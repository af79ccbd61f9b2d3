"""Hostile targets: a huge frame size, too many frames, too long, and files that name other files."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits
from pipeline.probe import probe
from tests.media import (
    make_clip,
    make_concat_script,
    make_faststart,
    make_huge_header_avi,
    make_playlist,
    make_truncated,
)


def _refused(path: Path, limits: MediaLimits | None = None) -> str:
    with pytest.raises(InvalidMediaError) as caught:
        probe(path, limits)
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


@pytest.mark.parametrize("size", [16000, 100000])
def test_a_header_claiming_a_huge_frame_is_refused_fast(tmp_path: Path, size: int) -> None:
    path = make_huge_header_avi(tmp_path / "huge.avi", size, size)
    began = time.perf_counter()
    message = _refused(path)
    assert time.perf_counter() - began < 0.5
    assert f"more than the {7680 * 4320} pixels allowed (FACEFLEET_MAX_PIXELS)" in message


def test_the_huge_header_is_real(tmp_path: Path) -> None:
    with av.open(str(make_huge_header_avi(tmp_path / "huge.avi"))) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (16000, 16000)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts", ".flv"])
def test_the_frame_size_limit_is_exact(tmp_path: Path, suffix: str) -> None:
    clip = make_clip(tmp_path / f"clip{suffix}", frames=5)
    assert probe(clip.path, MediaLimits(max_pixels=96 * 64)).width == 96
    message = _refused(clip.path, MediaLimits(max_pixels=96 * 64 - 1))
    assert "96x64 is more than the 6143 pixels allowed (FACEFLEET_MAX_PIXELS)" in message


def test_too_many_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=30)
    assert probe(clip.path, MediaLimits(max_frames=30)).frame_count == 30
    message = _refused(clip.path, MediaLimits(max_frames=29))
    assert "more than the 29 frames allowed (FACEFLEET_MAX_FRAMES)" in message


def test_the_frame_limit_stops_the_demuxing_early(tmp_path: Path) -> None:
    """The copy is cut after about 18 frames: a full demux finds that, an early stop does not."""
    clip = make_clip(tmp_path / "whole.mp4", frames=30)
    cut = make_truncated(make_faststart(clip.path, tmp_path / "fast.mp4"), tmp_path / "cut.mp4", 0.6)
    assert "truncated" in _refused(cut)
    assert "FACEFLEET_MAX_FRAMES" in _refused(cut, MediaLimits(max_frames=3))


def test_too_long(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=30, fps=25)  # 1.2 s
    assert probe(clip.path, MediaLimits(max_duration_s=1.2)).frame_count == 30
    message = _refused(clip.path, MediaLimits(max_duration_s=1.0))
    assert "more than the 1s allowed (FACEFLEET_MAX_DURATION_S)" in message


def test_a_playlist_is_refused_not_followed(tmp_path: Path) -> None:
    segment = make_clip(tmp_path / "segment.ts", frames=20)
    playlist = make_playlist(tmp_path / "list.m3u8", segment.path)
    with av.open(str(playlist)) as container:  # plain FFmpeg follows it
        assert container.format.name == "hls"
    assert "not a supported media type" in _refused(playlist)


@pytest.mark.parametrize("name", ["script.txt", "script.mp4"])
def test_a_concat_script_is_refused_not_followed(tmp_path: Path, name: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=10)
    script = make_concat_script(tmp_path / name, clip.path)
    with av.open(str(script)) as container:
        assert container.format.name == "concat"
    assert "not a supported media type" in _refused(script)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_plain_containers_still_open(tmp_path: Path, suffix: str) -> None:
    clip = make_clip(tmp_path / f"clip{suffix}", frames=20, audio="aac")
    video = probe(clip.path)
    assert video.frame_count == 20 and video.audio is not None
