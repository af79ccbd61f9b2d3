from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import InvalidMediaError
from pipeline.probe import VideoProbe, probe
from tests.media import (
    Clip,
    make_audio_only,
    make_clip,
    make_faststart,
    make_png,
    make_text_file,
    make_truncated,
    make_zero_frames,
)
from tests.pipeline.engine import KINDS


def test_frame_list_is_exact(clips: dict[str, Clip], kind: str) -> None:
    clip = clips[kind]
    video = probe(clip.path)
    assert video.frame_count == clip.frames
    assert [p * video.time_base for p in video.frame_pts] == [clip.seconds(i) for i in range(clip.frames)]
    assert video.start_time == clip.seconds(0)
    options = KINDS[kind][1]
    assert (video.width, video.height) == (options.get("width", 96), options.get("height", 64))
    assert video.rotation == options.get("rotation", 0)
    assert video.codec == "h264"


def test_audio_info(clips: dict[str, Clip]) -> None:
    assert probe(clips["start_no_audio"].path).audio is None
    audio = probe(clips["cfr"].path).audio
    assert audio is not None and audio.codec == "aac" and audio.sample_rate == 48_000 and audio.channels == 1
    pcm = probe(clips["vfr_mkv_pcm"].path).audio
    assert pcm is not None and pcm.codec == "pcm_s16le"
    late = probe(clips["odd_rotated"].path).audio
    assert late is not None and late.start_pts is not None
    # the tone starts half a second after the video (less the AAC encoder's priming)
    assert abs(late.start_pts * late.time_base - Fraction(5, 2)) < Fraction(1, 20)


def test_frame_durations(clips: dict[str, Clip]) -> None:
    video = probe(clips["vfr"].path)
    pts = video.frame_pts
    assert [video.frame_duration(i) for i in range(len(pts) - 1)] == [
        b - a for a, b in zip(pts, pts[1:], strict=False)
    ]
    assert video.frame_duration(len(pts) - 1) > 0
    cfr = probe(clips["cfr"].path)
    assert cfr.seconds(cfr.frame_count) == Fraction(40, 25)
    with pytest.raises(IndexError):
        cfr.frame_duration(cfr.frame_count)


def test_dict_round_trip(clips: dict[str, Clip], kind: str) -> None:
    video = probe(clips[kind].path)
    again = VideoProbe.from_dict(json.loads(json.dumps(video.to_dict())))
    assert again == video
    assert again.frame_duration(again.frame_count - 1) == video.frame_duration(video.frame_count - 1)
    assert json.loads(json.dumps(video.to_dict()))["time_base"] == (
        f"{video.time_base.numerator}/{video.time_base.denominator}"
    )


# ------------------------------------------------------------------------------ bad inputs


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(InvalidMediaError) as caught:
        probe(path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    for word in words:
        assert word in message, message
    return message


def test_not_media(tmp_path: Path) -> None:
    _refused(make_text_file(tmp_path / "notes.mp4"), "not a readable video")


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    _refused(tmp_path / "empty.mp4", "empty")
    _refused(tmp_path / "missing.mp4", "no such file")


def test_truncated_without_index(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "whole.mp4", frames=30)
    _refused(make_truncated(clip.path, tmp_path / "cut.mp4", 0.6), "truncated")


def test_truncated_with_index_first(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "whole.mp4", frames=30, audio="aac")
    fast = make_faststart(clip.path, tmp_path / "fast.mp4")
    assert probe(fast).frame_count == 30
    _refused(make_truncated(fast, tmp_path / "cut.mp4", 0.6), "truncated")


def test_truncated_matroska(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "whole.mkv", frames=60, audio="aac")
    assert probe(clip.path).frame_count == 60
    _refused(make_truncated(clip.path, tmp_path / "cut.mkv", 0.6), "truncated")


def test_image(tmp_path: Path) -> None:
    _refused(make_png(tmp_path / "face.png"), "an image, not a video")


def test_zero_frames(tmp_path: Path) -> None:
    _refused(make_zero_frames(tmp_path / "zero.mkv"), "no frames")


def test_audio_only(tmp_path: Path) -> None:
    _refused(make_audio_only(tmp_path / "sound.m4a"), "no video stream")
