"""Encode segments for every chunk, stitch, and check the output frame by frame."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.encode import EncoderSettings, encode_segment, padded
from pipeline.errors import PipelineError
from pipeline.frames import Frame
from pipeline.output_size import coded_size
from pipeline.probe import probe
from pipeline.reader import read_frames
from pipeline.stitch import stitch
from tests.media import Clip, frame_index
from tests.pipeline.engine import KINDS, check_output, run_engine


@pytest.mark.parametrize(("chunk", "segment"), [(10, 5), (13, 4)], ids=["divides", "does-not-divide"])
def test_whole_video(clips: dict[str, Clip], kind: str, tmp_path: Path, chunk: int, segment: int) -> None:
    clip = clips[kind]
    video = probe(clip.path)
    out = run_engine(clip.path, video, 0, video.frame_count, chunk, segment, tmp_path)
    check_output(out, clip, video, 0, video.frame_count)


@pytest.mark.parametrize("kind", ["bframes", "vfr_mkv_pcm", "odd_rotated"])
def test_trimmed(clips: dict[str, Clip], kind: str, tmp_path: Path) -> None:
    clip = clips[kind]
    video = probe(clip.path)
    start, end = 7, clip.frames - 5
    out = run_engine(clip.path, video, start, end, 9, 4, tmp_path)
    check_output(out, clip, video, start, end)


def test_single_frame(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["vfr"]
    video = probe(clip.path)
    out = run_engine(clip.path, video, 17, 18, 1, 1, tmp_path)
    check_output(out, clip, video, 17, 18)


@pytest.mark.parametrize("kind", ["cfr", "odd_rotated", "vfr_mkv_pcm"])
def test_deterministic(clips: dict[str, Clip], kind: str, tmp_path: Path) -> None:
    clip = clips[kind]
    video = probe(clip.path)
    one = run_engine(clip.path, video, 3, clip.frames, 8, 3, tmp_path / "one")
    two = run_engine(clip.path, video, 3, clip.frames, 8, 3, tmp_path / "two")
    assert one.read_bytes() == two.read_bytes()
    for segment in sorted((tmp_path / "one").glob("0*.mp4")):
        assert segment.read_bytes() == (tmp_path / "two" / segment.name).read_bytes()


def test_faststart(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["cfr"]
    out = run_engine(clip.path, probe(clip.path), 0, clip.frames, 40, 10, tmp_path)
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)


def test_processed_frames(clips: dict[str, Clip], tmp_path: Path) -> None:
    """Frames whose pixels a processor replaced (an image instead of the decoder's frame), at
    an odd size: coded in 4:2:0 one column and one row larger, the visible ones unchanged."""
    clip = clips["odd_rotated"]
    video = probe(clip.path)

    def touched(frames):
        for f in frames:
            image = f.image.copy()
            f.image = image
            yield f

    out = tmp_path / "seg.mp4"
    count = encode_segment(touched(read_frames(clip.path, video, 4, 12)), out, video, EncoderSettings())
    assert count == 8
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (162, 92)
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert [frame_index(f) for f in container.decode(stream)] == list(range(4, 12))


def test_odd_size_padding_keeps_the_source_samples(clips: dict[str, Clip], tmp_path: Path) -> None:
    """An untouched 4:2:0 frame of an odd size: its luma grows by its own last column and row,
    its chroma planes (which already cover the padded size) are the source's own."""
    clip = clips["odd_rotated"]
    video = probe(clip.path)
    # the clip itself is 4:4:4 (x264 could not code it otherwise): its frame as a 4:2:0 decoder's
    source = next(iter(read_frames(clip.path, video, 0, 1))).to_video_frame().reformat(format="yuv420p")
    coded = padded(source, 162, 92, "yuv420p")
    luma, grown = _plane(source, 0), _plane(coded, 0)
    assert grown.shape == (92, 162)
    assert np.array_equal(grown[:91, :161], luma)
    assert np.array_equal(grown[:91, 161], luma[:, 160]) and np.array_equal(grown[91, :161], luma[90])
    for index in (1, 2):
        assert np.array_equal(_plane(coded, index), _plane(source, index))  # 81x46 both


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, -1)[:, : plane.width].copy()


def test_h264_pictures_are_one_slice_each(clips: dict[str, Clip], tmp_path: Path) -> None:
    """x264 runs frame threads, as the ffmpeg CLI runs it: PyAV's default (slice threads)
    cuts every picture into one slice per thread, which codes worse and keeps fewer cores
    busy. A picture is one coded slice NAL unit in the segment's packets (length-prefixed)."""
    video = probe(clips["cfr"].path)
    noise = np.random.default_rng(7).integers(0, 256, (12, 360, 640, 3), dtype=np.uint8)
    frames = [  # large enough that slice threads would cut it (x264 keeps a small picture whole)
        Frame(
            i,
            video.frame_pts[i],
            video_frame=av.VideoFrame.from_ndarray(noise[i], format="bgr24").reformat(format="yuv420p"),
        )
        for i in range(12)
    ]
    out = tmp_path / "segment.mp4"
    assert encode_segment(frames, out, video, EncoderSettings(threads=4)) == 12
    with av.open(str(out)) as container:
        slices = [_slice_nal_units(bytes(p)) for p in container.demux(container.streams.video[0]) if p.size]
    assert slices == [1] * 12


def _slice_nal_units(packet: bytes) -> int:
    count, at = 0, 0
    while at + 4 < len(packet):
        size = int.from_bytes(packet[at : at + 4], "big")
        if packet[at + 4] & 0x1F in (1, 5):  # a coded slice (non-IDR, IDR)
            count += 1
        at += 4 + size
    return count


def test_odd_size_format() -> None:
    """4:2:0 in H.264 and HEVC: an odd size one pixel larger; 4:4:4 and AV1: the exact size."""
    assert coded_size(160, 90, "yuv420p", "libx264") == (160, 90)
    assert coded_size(161, 90, "yuv420p", "libx264") == (162, 90)
    assert coded_size(160, 91, None, "libx265") == (160, 92)
    assert coded_size(161, 91, "yuv420p10le", "libx264") == (162, 92)
    assert coded_size(161, 91, "yuv422p", "libx264") == (162, 91)
    assert coded_size(161, 91, "yuv444p", "libx264") == (161, 91)
    assert coded_size(161, 91, "yuv420p", "libsvtav1") == (161, 91)


def test_empty_segment(clips: dict[str, Clip], tmp_path: Path) -> None:
    video = probe(clips["cfr"].path)
    assert encode_segment([], tmp_path / "none.mp4", video, EncoderSettings()) == 0
    assert not (tmp_path / "none.mp4").exists()


def test_out_of_order_frames(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["cfr"]
    video = probe(clip.path)
    frames = list(read_frames(clip.path, video, 0, 4))
    with pytest.raises(PipelineError, match="out of order"):
        encode_segment([frames[1], frames[0]], tmp_path / "bad.mp4", video, EncoderSettings())
    assert not (tmp_path / "bad.mp4").exists()
    image = frames[2].image[:-2]
    with pytest.raises(PipelineError, match="is 96x62"):
        encode_segment(
            [frames[0], Frame(1, frames[1].pts, image=image)], tmp_path / "bad.mp4", video, EncoderSettings()
        )


def test_stitch_refuses_wrong_segments(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["cfr"]
    video = probe(clip.path)
    settings = EncoderSettings()
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_segment(read_frames(clip.path, video, 0, 10), a, video, settings)
    encode_segment(read_frames(clip.path, video, 10, 20), b, video, settings)
    out = tmp_path / "out.mp4"
    with pytest.raises(PipelineError, match="frame 0 is at"):
        stitch([b, a], clip.path, video, 0, 20, out)
    with pytest.raises(PipelineError, match="hold 10 frames, expected 20"):
        stitch([a], clip.path, video, 0, 20, out)
    with pytest.raises(PipelineError, match="missing"):
        stitch([a, tmp_path / "nope.mp4"], clip.path, video, 0, 20, out)
    other = tmp_path / "other.mp4"
    encode_segment(
        read_frames(clip.path, video, 10, 20), other, video, EncoderSettings(crf=30, preset="slow")
    )
    with pytest.raises(PipelineError, match="other settings"):
        stitch([a, other], clip.path, video, 0, 20, out)
    assert not out.exists()
    stitch([a, b], clip.path, video, 0, 20, out)
    assert probe(out).frame_count == 20


def test_kinds_cover_the_brief() -> None:
    options = [o for _, o in KINDS.values()]
    assert any(o.get("vfr") for o in options) and any(o.get("bframes") for o in options)
    assert any(o.get("rotation") for o in options) and any(o.get("start") for o in options)
    assert any(o.get("width", 96) % 2 for o in options) and any(not o.get("audio") for o in options)
