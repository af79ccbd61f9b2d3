"""`facefleet run --processors none` on inputs made by the ffmpeg CLI: B-frames, an open GOP,
variable frame rate with irregular gaps, a non-zero start, an edit list (a cut made by stream
copy). The output has the same presented frames at the same times per ffprobe (a trimmed one
is moved to start at 0), each within 40 dB PSNR of the input's, and a trim gives exactly the
frames asked for."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.embedded.conftest import run_cli
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

MIN_PSNR_DB = 40.0


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


def check_frames(out: Path, target: Path, start: int, end: int) -> None:
    source_times = frame_times(target)
    shift = source_times[start] if start > 0 else Fraction(0)
    assert frame_times(out) == [t - shift for t in source_times[start:end]]
    wanted, got = decoded_images(target)[start:end], decoded_images(out)
    assert indices(got) == indices(wanted)
    worst = min(psnr(a, b) for a, b in zip(got, wanted, strict=True))
    assert worst >= MIN_PSNR_DB, f"a frame is only {worst:.1f} dB from the input's"


@pytest.mark.parametrize("kind", KINDS)
def test_whole_video_keeps_every_presented_frame(inputs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    run(inputs[kind], out)
    count = len(frame_times(inputs[kind]))
    check_frames(out, inputs[kind], 0, count)
    assert [s["codec_type"] for s in ffprobe(out, "-show_streams")["streams"]] == ["video", "audio"]


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
