"""Media made by the ffmpeg CLI (not by our encoder), and what ffprobe says about a file.

Frame i of every clip shows index i (``tests.media.stamp``): the frames are piped raw into
``ffmpeg``, which encodes and muxes them as a user's tools would (B-frames, open GOPs,
variable frame rate, a start offset, an edit list cut by stream copy, ...).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.encode import visible
from tests.media import read_index, stamp

FPS = 25
AUDIO_RATE = 48_000
# presented times in ms: gaps of 40 ms, plus 30 ms every 4th frame and 7 or 14 ms in between
VFR_SETPTS = "settb=1/1000,setpts=(N*40+floor(N/4)*30+mod(N\\,3)*7)/1000/TB"


def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise RuntimeError("the ffmpeg CLI is missing: run `make install` (it installs ffmpeg)")


def ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    require_ffmpeg()
    quiet = ["-nostdin"] if stdin is None else []
    subprocess.run(["ffmpeg", *quiet, "-v", "error", "-y", *args], input=stdin, check=True)


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    require_ffmpeg()
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def frame_times(path: Path) -> list[Fraction]:
    """The presented video frames' timestamps, in seconds, as ffprobe decodes them."""
    frames = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pts,best_effort_timestamp")[
        "frames"
    ]
    stream = ffprobe(path, "-select_streams", "v:0", "-show_entries", "stream=time_base")["streams"][0]
    base = Fraction(stream["time_base"])
    return [int(f.get("pts", f["best_effort_timestamp"])) * base for f in frames]


def make_stamped(
    path: Path,
    *,
    frames: int = 40,
    width: int = 128,
    height: int = 96,
    video_args: Sequence[str] = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "16"),
    extra_inputs: Sequence[str] = ("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}"),
    output_args: Sequence[str] = ("-c:a", "aac"),
    pix_fmt: str = "yuv420p",
) -> Path:
    """Frames 0..frames-1, stamped, at 25 fps, encoded by the ffmpeg CLI (with a tone)."""
    raw = b"".join(stamp(i, width, height).tobytes() for i in range(frames))
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = ["-map", "0:v"] + (["-map", "1:a", "-shortest"] if extra_inputs else [])
    ffmpeg(
        *("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-"),
        *extra_inputs,
        *maps,
        *video_args,
        "-pix_fmt",
        pix_fmt,
        *output_args,
        str(path),
        stdin=raw,
    )
    return path


def make_kind(kind: str, folder: Path) -> Path:
    """One input of each kind the issue names, made by the ffmpeg CLI."""
    bframes = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-x264-params", "bframes=3:keyint=12")
    if kind == "bframes":
        return make_stamped(folder / "bframes.mp4", video_args=bframes)
    if kind == "open_gop":
        params = "bframes=3:keyint=10:min-keyint=10:scenecut=0:open-gop=1"
        return make_stamped(
            folder / "open-gop.mp4",
            video_args=("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-x264-params", params),
        )
    if kind == "vfr":
        return make_stamped(
            folder / "vfr.mp4",
            video_args=(*bframes, "-vf", VFR_SETPTS, "-fps_mode", "passthrough", "-enc_time_base", "1:1000"),
        )
    if kind == "start":
        return make_stamped(
            folder / "start.mkv", video_args=bframes, output_args=("-c:a", "aac", "-output_ts_offset", "1.4")
        )
    if kind == "edit_list":
        base = make_stamped(folder / "long.mp4", frames=80, video_args=bframes)
        cut = folder / "cut.mp4"
        ffmpeg("-ss", "1.3", "-i", str(base), "-t", "1.2", "-c", "copy", str(cut))
        return cut
    if kind == "tracks":
        return make_tracks(folder / "tracks.mkv")
    if kind == "rotation":  # ffmpeg 5.1 turns the rotate tag into a display matrix on a copy
        plain = make_stamped(folder / "upright.mp4")
        rotated = folder / "rotated.mp4"
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
        return rotated
    if kind == "hdr10":
        hdr = ("-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc")
        x265 = ("-c:v", "libx265", "-crf", "14", "-preset", "veryfast", "-x265-params", "log-level=error")
        return make_stamped(folder / "hdr10.mp4", video_args=(*x265, *hdr), pix_fmt="yuv420p10le")
    if kind == "odd":  # 4:2:0 at an odd size: VP9 codes it (H.264 cannot)
        vp9 = ("-c:v", "libvpx-vp9", "-crf", "10", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8")
        return make_stamped(
            folder / "odd.mkv",
            width=641,
            height=361,
            frames=25,
            video_args=vp9,
            output_args=("-c:a", "libopus"),
        )
    raise ValueError(kind)


KINDS = ("bframes", "open_gop", "vfr", "start", "edit_list", "tracks", "rotation", "hdr10", "odd")

CHAPTERS = (
    ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=700\ntitle=Opening\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=700\nEND=1600\ntitle=Ending\n"
)
SUBTITLES = "1\n00:00:00,200 --> 00:00:00,600\nHello\n\n2\n00:00:00,800 --> 00:00:01,400\nWorld\n"


def make_tracks(path: Path) -> Path:
    """Video, English and French audio with titles, and an English subtitle track (SubRip in
    Matroska, mov_text in MP4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    srt = path.with_suffix(".srt")
    srt.write_text(SUBTITLES)
    chapters = path.with_suffix(".chapters.txt")
    chapters.write_text(CHAPTERS)
    tone = f"sine=frequency=660:sample_rate={AUDIO_RATE}:duration=1.6"
    subtitle_codec = "mov_text" if path.suffix == ".mp4" else "srt"
    return make_stamped(
        path,
        extra_inputs=(
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}"),
            *("-f", "lavfi", "-i", tone, "-i", str(srt), "-i", str(chapters)),
        ),
        output_args=(
            *("-map", "2:a", "-map", "3:s", "-map_chapters", "4", "-c:a", "aac", "-c:s", subtitle_codec),
            *("-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English"),
            *("-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Francais"),
            *("-metadata:s:s:0", "language=eng", "-metadata", "title=Two tracks"),
        ),
    )


def decoded_images(path: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every presented frame of the first video stream as BGR; ``size`` (width, height): cut
    to it first (an odd size that 4:2:0 H.264 codes a pixel larger)."""
    with av.open(str(path)) as container:
        frames = container.decode(container.streams.video[0])
        return [(visible(f, *size) if size else f).to_ndarray(format="bgr24") for f in frames]


def indices(images: list[np.ndarray]) -> list[int]:
    return [read_index(image) for image in images]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
