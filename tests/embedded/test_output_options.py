"""Output options of `facefleet run`: --codec, --crf, --preset, --pix-fmt, --container and
--faststart, on inputs made by the ffmpeg CLI; bad values are refused with a clear error."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.ffmpeg_media import decoded_images, ffprobe, frame_times, indices, make_kind, make_tracks, psnr
from tests.harness.cli import run_cli

# The mean over the frames, and a floor for any one frame (a wrong or shifted picture is
# far below both). x264's MB-tree (its default, as the ffmpeg CLI runs it) moves bits to the
# pictures others draw on: in 5-frame segments of these clips frames range 38-42 dB and the
# mean is ~40 at crf 18 (without MB-tree every frame was above 40)
MIN_PSNR_DB = 38.0
MIN_FRAME_PSNR_DB = 35.0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("option-inputs")
    return {kind: make_kind(kind, folder) for kind in ("hdr10", "odd", "bframes")}


def run(target: Path, out: Path, *flags: str) -> tuple[int, str]:
    result = run_cli(
        out.parent / "home",
        "run",
        *("--target", str(target), "--output", str(out), "--processors", "none", "--no-progress"),
        *("--chunk-frames", "13", "--segment-frames", "5", *flags),
    )
    return result.returncode, result.stderr


def video_stream(path: Path) -> dict[str, object]:
    info: dict[str, object] = ffprobe(path, "-select_streams", "v:0", "-show_streams")["streams"][0]
    return info


def check_same_frames(out: Path, target: Path) -> None:
    assert frame_times(out) == frame_times(target)
    wanted = decoded_images(target)
    # an odd size coded a pixel larger (4:2:0 H.264/HEVC): the visible frame is the input's size
    got = decoded_images(out, (wanted[0].shape[1], wanted[0].shape[0]))
    assert indices(got) == indices(wanted)
    values = [psnr(a, b) for a, b in zip(got, wanted, strict=True)]
    assert min(values) >= MIN_FRAME_PSNR_DB, f"a frame is only {min(values):.1f} dB from the input's"
    assert sum(values) / len(values) >= MIN_PSNR_DB, (
        f"the frames are {sum(values) / len(values):.1f} dB on average"
    )


@pytest.mark.parametrize(
    ("codec", "crf", "preset", "container", "name", "profile", "format_name"),
    [
        ("h264", "16", "fast", "mov", "h264", "High 10", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("hevc", "16", "fast", "mp4", "hevc", "Main 10", "mov,mp4,m4a,3gp,3g2,mj2"),
        # SVT-AV1's fast presets (veryfast: 10) lose detail on tiny frames; slow is its 5
        ("av1", "16", "slow", "mkv", "av1", "Main", "matroska,webm"),
    ],
)
def test_codec_and_container_keep_10_bit_and_colour(
    inputs: dict[str, Path],
    tmp_path: Path,
    codec: str,
    crf: str,
    preset: str,
    container: str,
    name: str,
    profile: str,
    format_name: str,
) -> None:
    target = inputs["hdr10"]
    out = tmp_path / "out.video"
    code, stderr = run(
        target, out, "--codec", codec, "--container", container, "--crf", crf, "--preset", preset
    )
    assert code == 0, stderr
    video = video_stream(out)
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == (name, profile, "yuv420p10le")
    source = video_stream(target)
    for key in ("color_primaries", "color_transfer", "color_space"):
        assert video[key] == source[key]
    assert ffprobe(out, "-show_format")["format"]["format_name"] == format_name
    check_same_frames(out, target)
    # each segment (5 frames of a 13-frame chunk) starts on a keyframe: joined by stream copy
    packets = ffprobe(out, "-select_streams", "v:0", "-show_entries", "packet=flags")["packets"]
    keyframes = {i for i, p in enumerate(packets) if "K" in p["flags"]}
    starts = {
        s for chunk in range(0, len(packets), 13) for s in range(chunk, min(chunk + 13, len(packets)), 5)
    }
    assert starts <= keyframes


def test_av1_codes_an_odd_size_in_4_2_0(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    code, stderr = run(inputs["odd"], out, "--codec", "av1", "--crf", "16", "--preset", "slow")
    assert code == 0, stderr
    video = video_stream(out)
    assert (video["width"], video["height"], video["pix_fmt"]) == (641, 361, "yuv420p")
    check_same_frames(out, inputs["odd"])


@pytest.mark.parametrize(
    ("codec", "flags"),
    [("h264", ()), ("h264", ("--pix-fmt", "yuv420p")), ("hevc", ())],
    ids=["h264-default", "h264-yuv420p", "hevc-default"],
)
def test_4_2_0_at_an_odd_size_is_padded_and_playable(
    inputs: dict[str, Path], tmp_path: Path, codec: str, flags: tuple[str, ...]
) -> None:
    """H.264 and HEVC cannot code 4:2:0 at 641x361: the output is 642x362 (the last column and
    row repeated), which every player plays; the visible 641x361 is the input's, and the run
    says so."""
    out = tmp_path / "out.mp4"
    code, stderr = run(inputs["odd"], out, "--codec", codec, *flags)
    assert code == 0, stderr
    video = video_stream(out)
    assert (video["codec_name"], video["width"], video["height"], video["pix_fmt"]) == (
        codec,
        642,
        362,
        "yuv420p",
    )
    assert "641x361 coded as 642x362" in stderr and "--pix-fmt yuv444p or --codec av1" in stderr
    check_same_frames(out, inputs["odd"])
    # the padding repeats the picture's edge: nothing a player shows there is new
    last = decoded_images(out)[0].astype(int)
    assert (
        abs(last[:361, 641] - last[:361, 640]).mean() < 4
        and abs(last[361, :641] - last[360, :641]).mean() < 4
    )


def test_yuv444p_keeps_an_odd_size(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    code, stderr = run(inputs["odd"], out, "--pix-fmt", "yuv444p")
    assert code == 0, stderr
    video = video_stream(out)
    assert (video["width"], video["height"], video["pix_fmt"]) == (641, 361, "yuv444p")
    assert "coded as" not in stderr
    check_same_frames(out, inputs["odd"])


def _atoms(path: Path) -> list[bytes]:
    """The top-level MP4 boxes in file order."""
    data, names, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        names.append(data[at + 4 : at + 8])
        at += size if size >= 8 else len(data)
    return names


@pytest.mark.parametrize(("flag", "moov_first"), [("--faststart", True), ("--no-faststart", False)])
def test_faststart_puts_the_index_first(
    inputs: dict[str, Path], tmp_path: Path, flag: str, moov_first: bool
) -> None:
    out = tmp_path / "out.mp4"
    code, stderr = run(inputs["bframes"], out, flag)
    assert code == 0, stderr
    atoms = _atoms(out)
    assert (atoms.index(b"moov") < atoms.index(b"mdat")) == moov_first


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--codec", "vp9"), "codec"),
        (("--container", "avi"), "container"),
        (("--pix-fmt", "rgb24"), "pix_fmt"),
        (("--crf", "60"), "crf: at most 51 for h264"),
        (("--codec", "av1", "--pix-fmt", "yuv444p"), "pix_fmt: av1"),
        (("--preset", "ludicrous"), "preset"),
    ],
)
def test_bad_output_options_are_refused(
    inputs: dict[str, Path], tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out.mp4"
    code, stderr = run(inputs["bframes"], out, *flags)
    assert code == 1 and message in stderr, stderr
    assert not out.exists()


def test_mp4_keeps_mov_text_subtitles_and_both_audio_languages(tmp_path: Path) -> None:
    target = make_tracks(tmp_path / "media" / "tracks.mp4")
    out = tmp_path / "out.mp4"
    code, stderr = run(target, out)
    assert code == 0, stderr

    def streams(path: Path) -> list[tuple[str, str | None]]:
        found = ffprobe(path, "-show_streams")["streams"]
        return [(s["codec_name"], s.get("tags", {}).get("language")) for s in found]

    # MP4 holds the chapters as a text track too (a "bin_data" stream), in both files
    assert streams(out)[:4] == [("h264", "und"), ("aac", "eng"), ("aac", "fra"), ("mov_text", "eng")]
    assert streams(out) == streams(target)
    packets = ffprobe(out, "-select_streams", "s:0", "-show_packets")["packets"]
    wanted = ffprobe(target, "-select_streams", "s:0", "-show_packets")["packets"]
    assert [p["pts_time"] for p in packets] == [p["pts_time"] for p in wanted]


def test_a_trim_cuts_chapters_and_subtitles_to_the_range(tmp_path: Path) -> None:
    """Frames 15-35 of the two-track clip, from t0 (frame 15's time) to t1: the chapters are cut
    to the range and moved to start at 0; only the cue that starts inside it (the second) stays."""
    target = make_kind("tracks", tmp_path / "media")
    out = tmp_path / "out.mkv"
    code, stderr = run(target, out, "--trim-start", "15", "--trim-end", "35")
    assert code == 0, stderr
    t0, t1 = frame_times(target)[15], frame_times(target)[35]
    chapters = [
        (Fraction(c["start_time"]), Fraction(c["end_time"]), c["tags"]["title"])
        for c in ffprobe(out, "-show_chapters")["chapters"]
    ]
    assert chapters == [(0, Fraction("0.7") - t0, "Opening"), (Fraction("0.7") - t0, t1 - t0, "Ending")]

    def cues(path: Path) -> list[Fraction]:
        return [
            Fraction(c["pts_time"])
            for c in ffprobe(path, "-select_streams", "s:0", "-show_packets")["packets"]
        ]

    assert len(cues(target)) == 2
    assert cues(out) == [cues(target)[1] - t0]
    types = [s["codec_type"] for s in ffprobe(out, "-show_streams")["streams"]]
    assert types == ["video", "audio", "audio", "subtitle"]
