"""`facefleet run --processors none` on inputs made by the ffmpeg CLI: B-frames, an open GOP,
variable frame rate with irregular gaps, a non-zero start, an edit list (a cut made by stream
copy), two audio tracks with a subtitle track and chapters, a 90° rotation, BT.2020/PQ 10-bit,
an odd size (641x361). The output has the same presented frames at the same times per ffprobe
(a trimmed one is moved to start at 0), each within 40 dB PSNR of the input's, the same
streams with their tags, rotation, colour, bit depth and size (an odd one coded in 4:2:0 one
pixel larger, 642x362, whose visible 641x361 is the input's), and a trim gives exactly the
frames asked for."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.output_size import coded_size
from tests.ffmpeg_media import (
    AUDIO_RATE,
    FPS,
    KINDS,
    decoded_images,
    ffprobe,
    frame_times,
    indices,
    make_kind,
    psnr,
)
from tests.harness.cli import run_cli

# The mean over the frames, and a floor for any one frame (a wrong or shifted picture is
# far below both). x264's MB-tree (its default, as the ffmpeg CLI runs it) moves bits to the
# pictures others draw on: in 5-frame segments of these clips frames range 38-42 dB and the
# mean is ~40 at crf 18 (without MB-tree every frame was above 40)
MIN_PSNR_DB = 38.0
MIN_FRAME_PSNR_DB = 35.0
# Matroska keeps what MP4 cannot: SubRip subtitles and track titles
OUTPUT_NAMES = {"tracks": "out.mkv"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ffmpeg-inputs")
    return {kind: make_kind(kind, folder) for kind in KINDS}


def run(target: Path, out: Path, *trim: str) -> None:
    result = run_cli(
        out.parent / "home",
        "run",
        "--target",
        str(target),
        "--output",
        str(out),
        "--chunk-frames",
        "13",
        "--segment-frames",
        "5",
        "--processors",
        "none",
        "--no-progress",
        *trim,
    )
    assert result.returncode == 0, result.stderr


def streams(path: Path) -> list[tuple[str, str, str | None]]:
    """Each stream's type, language and title, as ffprobe shows them."""
    return [
        (s["codec_type"], s.get("tags", {}).get("language", "und"), s.get("tags", {}).get("title"))
        for s in ffprobe(path, "-show_streams")["streams"]
    ]


def picture(path: Path) -> dict[str, object]:
    """What a player reads about the video stream: size, bit depth, colour, rotation."""
    video = ffprobe(path, "-select_streams", "v:0", "-show_streams")["streams"][0]
    rotation = [d["rotation"] for d in video.get("side_data_list", []) if "rotation" in d]
    return {
        "size": (video["width"], video["height"]),
        "bits": 10 if "10" in video["pix_fmt"] else 8,
        "colour": [video.get(k) for k in ("color_primaries", "color_transfer", "color_space", "color_range")],
        "rotation": rotation,
    }


def chapters(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    return [
        (Fraction(c["start_time"]), Fraction(c["end_time"]), c.get("tags", {}).get("title", ""))
        for c in ffprobe(path, "-show_chapters")["chapters"]
    ]


def check_frames(out: Path, target: Path, start: int, end: int) -> None:
    source_times = frame_times(target)
    shift = source_times[start] if start > 0 else Fraction(0)
    assert frame_times(out) == [t - shift for t in source_times[start:end]]
    wanted = decoded_images(target)[start:end]
    got = decoded_images(out, (wanted[0].shape[1], wanted[0].shape[0]))  # an odd size's padding off
    assert indices(got) == indices(wanted)
    values = [psnr(a, b) for a, b in zip(got, wanted, strict=True)]
    assert min(values) >= MIN_FRAME_PSNR_DB, f"a frame is only {min(values):.1f} dB from the input's"
    assert sum(values) / len(values) >= MIN_PSNR_DB, (
        f"the frames are {sum(values) / len(values):.1f} dB on average"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_whole_video_keeps_every_presented_frame(inputs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    target = inputs[kind]
    out = tmp_path / OUTPUT_NAMES.get(kind, "out.mp4")
    run(target, out)
    count = len(frame_times(target))
    check_frames(out, target, 0, count)
    assert streams(out) == streams(target)
    source = picture(target)
    # H.264's 4:2:0 (the default) codes an odd size one pixel larger, its last column and row repeated
    width, height = source["size"]
    assert picture(out) == {**source, "size": coded_size(width, height, None, "libx264")}
    assert chapters(out) == chapters(target)
    assert _tags(out).get("title") == _tags(target).get("title")


def _tags(path: Path) -> dict[str, str]:
    tags: dict[str, str] = ffprobe(path, "-show_format")["format"].get("tags", {})
    return tags


@pytest.mark.parametrize("kind", KINDS)
def test_trim_by_frame_index(inputs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    count = len(frame_times(inputs[kind]))
    start, end = 6, count - 4
    out = tmp_path / "out.mp4"
    run(inputs[kind], out, "--trim-start", str(start), "--trim-end", str(end))
    check_frames(out, inputs[kind], start, end)


def test_trimmed_output_is_a_clip_of_its_own(inputs: dict[str, Path], tmp_path: Path) -> None:
    """Frames 10-30 of a 25 fps video: starts at 0, lasts 0.8 s, audio cut to the sample."""
    out = tmp_path / "out.mp4"
    run(inputs["bframes"], out, "--trim-start", "10", "--trim-end", "30")
    info = ffprobe(out, "-show_format", "-show_streams")
    seconds = Fraction(20, FPS)
    assert Fraction(info["format"]["start_time"]) == 0
    assert Fraction(info["format"]["duration"]) == seconds
    video, audio = info["streams"]
    assert Fraction(video["start_time"]) == 0 and int(video["nb_frames"]) == 20
    assert Fraction(audio["start_time"]) == 0
    assert int(audio["duration_ts"]) * Fraction(audio["time_base"]) == seconds
    assert int(audio["duration_ts"]) == seconds * AUDIO_RATE


def audio_packets(path: Path) -> dict[int, list[str]]:
    """Each audio stream's packets (their data's SHA-256), as ffprobe reads them."""
    packets = ffprobe(
        path,
        "-select_streams",
        "a",
        "-show_packets",
        "-show_data_hash",
        "sha256",
        "-show_entries",
        "packet=stream_index,data_hash",
    )["packets"]
    streams: dict[int, list[str]] = {}
    for packet in packets:
        streams.setdefault(int(packet["stream_index"]), []).append(packet["data_hash"])
    return streams


def audio_counts(path: Path) -> list[int]:
    found = ffprobe(path, "-select_streams", "a", "-count_packets", "-show_entries", "stream=nb_read_packets")
    return [int(s["nb_read_packets"]) for s in found["streams"]]


def first_skip(path: Path) -> list[object]:
    """The skip-samples side data of the first audio packet (what makes players skip AAC's priming)."""
    packets = ffprobe(path, "-select_streams", "a:0", "-show_packets", "-read_intervals", "%+#1")["packets"]
    return [d.get("skip_samples") for d in packets[0].get("side_data_list", [])]


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "odd"])  # odd: Opus, priming by pre-skip
def test_copied_audio_keeps_every_packet(inputs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    """A whole video's AAC is copied packet for packet: the encoder's priming (the first packet,
    at a negative time, which the decoder needs and the edit list skips) included."""
    target = inputs[kind]
    out = tmp_path / OUTPUT_NAMES.get(kind, "out.mp4")
    run(target, out)
    assert audio_counts(out) == audio_counts(target)
    assert audio_packets(out) == audio_packets(target)
    assert first_skip(out) == first_skip(target)
