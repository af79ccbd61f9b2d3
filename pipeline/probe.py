"""Probing a target video: its streams, rotation, audio and the exact list of frame timestamps.

The frame list comes from demuxing every video packet (a count, never ``duration x fps``);
packets that carry no frame (empty, or marked discard by an edit list) are not counted, but
discarded ones are decoded (the first shown frame may reference them). The first frame is
decoded too, which proves the stream decodes and gives the rotation of the
display matrix (FFmpeg hands the stream's display matrix to decoded frames).

Limits (``MediaLimits``) are checked as early as each can be: the frame size from the header,
before any packet is demuxed; the frame count and the duration while demuxing, which stops
as soon as either is past its limit.
"""

from __future__ import annotations

import errno
import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from pipeline.demux import open_input
from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits

# Demuxers that read single still images (FFmpeg's image2 family and its *_pipe probes).
_IMAGE_CODECS = frozenset(
    {"png", "mjpeg", "jpegls", "bmp", "tiff", "webp", "gif", "jpeg2000", "ppm", "pgm", "pam", "qoi", "jpegxl"}
)


# The decoders count a picture's rows padded to 64 bytes, so their own ceiling (the safety
# net while the file is opened) sits above the limit; the header's size is checked exactly.
_DECODER_HEADROOM = 2

MAX_AUDIO_CHANNELS = 8  # what the AAC encoder takes when the audio must be re-encoded


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    time_base: Fraction
    start_pts: int | None
    stream_index: int = 0  # index of the stream in the container
    layout: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "time_base": _fraction_text(self.time_base),
            "start_pts": self.start_pts,
            "stream_index": self.stream_index,
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioInfo:
        return cls(
            codec=d["codec"],
            sample_rate=int(d["sample_rate"]),
            channels=int(d["channels"]),
            time_base=Fraction(d["time_base"]),
            start_pts=None if d.get("start_pts") is None else int(d["start_pts"]),
            stream_index=int(d.get("stream_index", 0)),
            layout=d.get("layout", ""),
        )


@dataclass(frozen=True)
class VideoProbe:
    format_name: str
    codec: str
    width: int
    height: int
    time_base: Fraction
    start_time: Fraction
    rotation: int
    frame_pts: tuple[int, ...]
    average_rate: Fraction | None
    audio: AudioInfo | None
    last_duration: int = 0  # pts duration of the last frame, 0 when the container gave none
    stream_index: int = 0  # index of the video stream in the container
    pix_fmt: str = ""
    # FFmpeg's colour enums (AVColorPrimaries, ...); 2 / 0 mean unspecified
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    color_range: int = 0

    @property
    def frame_count(self) -> int:
        return len(self.frame_pts)

    def frame_duration(self, i: int) -> int:
        """The pts delta from frame ``i`` to the next; for the last frame the container's
        packet duration, else the median delta (1 for a single frame without one)."""
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} is outside 0..{self.frame_count - 1}")
        if i + 1 < self.frame_count:
            return self.frame_pts[i + 1] - self.frame_pts[i]
        if self.last_duration > 0:
            return self.last_duration
        if self.frame_count > 1:
            deltas = [b - a for a, b in zip(self.frame_pts, self.frame_pts[1:], strict=False)]
            return max(1, int(statistics.median(deltas)))
        return 1

    def seconds(self, i: int) -> Fraction:
        """Presentation time of frame ``i`` in seconds; ``i == frame_count`` is the end of the last."""
        if i == self.frame_count:
            return (self.frame_pts[-1] + self.frame_duration(i - 1)) * self.time_base
        return self.frame_pts[i] * self.time_base

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_name": self.format_name,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "time_base": _fraction_text(self.time_base),
            "start_time": _fraction_text(self.start_time),
            "rotation": self.rotation,
            "frame_pts": list(self.frame_pts),
            "average_rate": None if self.average_rate is None else _fraction_text(self.average_rate),
            "audio": None if self.audio is None else self.audio.to_dict(),
            "last_duration": self.last_duration,
            "stream_index": self.stream_index,
            "pix_fmt": self.pix_fmt,
            "color_primaries": self.color_primaries,
            "color_trc": self.color_trc,
            "colorspace": self.colorspace,
            "color_range": self.color_range,
            "frame_count": self.frame_count,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoProbe:
        rate = d.get("average_rate")
        return cls(
            format_name=d["format_name"],
            codec=d["codec"],
            width=int(d["width"]),
            height=int(d["height"]),
            time_base=Fraction(d["time_base"]),
            start_time=Fraction(d["start_time"]),
            rotation=int(d["rotation"]),
            frame_pts=tuple(int(p) for p in d["frame_pts"]),
            average_rate=None if rate is None else Fraction(rate),
            audio=None if d.get("audio") is None else AudioInfo.from_dict(d["audio"]),
            last_duration=int(d.get("last_duration", 0)),
            stream_index=int(d.get("stream_index", 0)),
            pix_fmt=d.get("pix_fmt", ""),
            color_primaries=int(d.get("color_primaries", 2)),
            color_trc=int(d.get("color_trc", 2)),
            colorspace=int(d.get("colorspace", 2)),
            color_range=int(d.get("color_range", 0)),
        )


def _fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def probe(path: Path, limits: MediaLimits | None = None) -> VideoProbe:
    """Probe ``path``; raises InvalidMediaError with a one-line reason when it is not a usable
    video or is past one of ``limits`` (default: ``MediaLimits()``)."""
    path = Path(path)
    limits = limits or MediaLimits()
    if not path.is_file():
        raise InvalidMediaError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise InvalidMediaError(f"{path.name}: the file is empty")
    try:
        container = open_input(path, max_pixels=_DECODER_HEADROOM * limits.max_pixels)
    except MemoryError:  # the machine ran short, not a fault of the file: pipeline.sandbox says so
        raise
    except av.FFmpegError as exc:
        raise InvalidMediaError(f"{path.name}: {_open_failure(path, exc)}") from None
    try:
        return _probe(path, container, limits)
    finally:
        container.close()


def _declared_duration(metadata: dict[str, str]) -> Fraction | None:
    """The per-track DURATION tag Matroska muxers write at the end ("HH:MM:SS.nnnnnnnnn")."""
    text = metadata.get("DURATION") or metadata.get("duration")
    if not text:
        return None
    try:
        hours, minutes, seconds = text.strip().split(":")
        return (int(hours) * 60 + int(minutes)) * 60 + Fraction(seconds)
    except ValueError:
        return None


def _looks_like_video(path: Path) -> bool:
    """Whether the file starts like a video container (MP4/MOV, Matroska/WebM, AVI, MPEG-PS, FLV)."""
    with path.open("rb") as f:
        head = f.read(16)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip") or head.startswith(
        (b"\x1a\x45\xdf\xa3", b"RIFF", b"FLV", b"\x00\x00\x01\xba")
    )


def _open_failure(path: Path, exc: av.FFmpegError) -> str:
    if isinstance(exc, av.error.EOFError):
        return "the video has no frames, or the file is truncated"
    if exc.errno == errno.EINVAL:  # what FFmpeg answers for a demuxer off the whitelist
        return "not a supported media type (playlists, concat scripts and the like are refused)"
    if _looks_like_video(path):
        return f"the file is truncated or corrupt ({_reason(exc)})"
    return f"not a readable video file ({_reason(exc)})"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    if "moov atom not found" in str(exc):
        return "its index is missing: the file is truncated or incomplete"
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _check_size(name: str, video: Any, limits: MediaLimits) -> None:
    """The header's frame size against ``limits.max_pixels``. A decoder that refused the
    picture while the file was opened (see ``pipeline.demux``) has left the size at 0x0."""
    allowed = f"more than the {limits.max_pixels} pixels allowed (FACEFLEET_MAX_PIXELS)"
    width, height = int(video.width or 0), int(video.height or 0)
    if width <= 0 or height <= 0:
        raise InvalidMediaError(f"{name}: the video's frame size is unknown or {allowed}")
    if width * height > limits.max_pixels:
        raise InvalidMediaError(f"{name}: {width}x{height} is {allowed}")


def _check_length(name: str, frames: int, seconds: float, limits: MediaLimits) -> None:
    if limits.max_frames is not None and frames > limits.max_frames:
        raise InvalidMediaError(
            f"{name}: the video has more than the {limits.max_frames} frames allowed (FACEFLEET_MAX_FRAMES)"
        )
    if limits.max_duration_s is not None and seconds > limits.max_duration_s:
        raise InvalidMediaError(
            f"{name}: the video lasts at least {seconds:.2f}s, more than the {limits.max_duration_s:g}s "
            "allowed (FACEFLEET_MAX_DURATION_S)"
        )


def _probe(path: Path, container: Any, limits: MediaLimits) -> VideoProbe:
    name = path.name
    format_name = container.format.name or ""
    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        if container.streams.audio:
            raise InvalidMediaError(f"{name}: no video stream (the file has only audio)")
        raise InvalidMediaError(f"{name}: no video stream")
    video = videos[0]
    codec = video.codec_context.name if video.codec_context is not None else ""
    if "image2" in format_name or format_name.endswith("_pipe"):
        raise InvalidMediaError(f"{name}: an image, not a video")
    if video.time_base is None:
        raise InvalidMediaError(f"{name}: the video stream has no time base")
    _check_size(name, video, limits)

    audios = list(container.streams.audio)
    audio = None
    for a in audios:  # each may have to be re-encoded (AAC)
        channels = int(a.codec_context.channels or 0) if a.codec_context is not None else 0
        if channels > MAX_AUDIO_CHANNELS:
            raise InvalidMediaError(
                f"{name}: the audio has {channels} channels; at most {MAX_AUDIO_CHANNELS} are supported"
            )
    if audios:
        a = audios[0]
        ctx = a.codec_context
        channels = int(ctx.channels or 0) if ctx is not None else 0
        audio = AudioInfo(
            # the codec's own name ("mp3"), not its decoder's ("mp3float")
            codec=ctx.codec.canonical_name if ctx is not None else "",
            sample_rate=int(ctx.sample_rate or 0) if ctx is not None else 0,
            channels=channels,
            time_base=a.time_base or Fraction(1, 1),
            start_pts=a.start_time,
            stream_index=a.index,
            layout=ctx.layout.name if ctx is not None and ctx.layout is not None else "",
        )

    video.thread_type = "AUTO"
    pts_list: list[int] = []
    last_duration = 0
    first_frame = None
    missing_pts = False
    tick = float(video.time_base)
    lowest: int | None = None
    highest: int | None = None
    packets = 0  # with those an edit list discards, as the index counts them
    try:
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            packets += 1
            if first_frame is None:  # discarded packets too: the first shown frame may need them
                frames = video.decode(packet)
                if frames:
                    first_frame = frames[0]
            if packet.is_discard:  # before the edit list's start: decoded, never shown
                continue
            if packet.is_corrupt:
                raise InvalidMediaError(f"{name}: the video is truncated or corrupt at frame {len(pts_list)}")
            if packet.pts is None:
                missing_pts = True
            else:
                pts_list.append(packet.pts)
                lowest = packet.pts if lowest is None else min(lowest, packet.pts)
                highest = packet.pts if highest is None else max(highest, packet.pts)
                _check_length(name, len(pts_list), (highest - lowest) * tick, limits)
            last_duration = packet.duration or 0
    except MemoryError:  # FFmpeg's ENOMEM is one too
        raise
    except av.FFmpegError as exc:
        raise InvalidMediaError(
            f"{name}: the video is truncated or corrupt after frame {len(pts_list)} ({_reason(exc)})"
        ) from None
    if missing_pts:
        raise InvalidMediaError(f"{name}: the video packets carry no timestamps; remux it to MP4 or MKV")
    if not pts_list:
        raise InvalidMediaError(f"{name}: the video has no frames")
    if first_frame is None:
        try:
            frames = video.decode(None)
        except av.FFmpegError:
            frames = []
        if not frames:
            raise InvalidMediaError(f"{name}: the video stream cannot be decoded")
        first_frame = frames[0]
    if codec in _IMAGE_CODECS and len(pts_list) == 1:
        raise InvalidMediaError(f"{name}: an image, not a video")
    expected = video.frames
    if format_name.startswith("mov") and expected and packets < expected:
        raise InvalidMediaError(
            f"{name}: the file is truncated: its index lists {expected} frames but only {packets} are present"
        )
    pts_list.sort()
    span = (pts_list[-1] + last_duration - pts_list[0]) * Fraction(video.time_base)
    _check_length(name, len(pts_list), float(span), limits)
    declared = _declared_duration(video.metadata)
    if declared is not None and len(pts_list) > 1:
        found = (pts_list[-1] + (last_duration or 0)) * Fraction(video.time_base)  # the tag counts from 0
        slack = Fraction(1, 2) + declared / 100
        if found + slack < declared:
            raise InvalidMediaError(
                f"{name}: the file is truncated: the video should end at {float(declared):.2f}s "
                f"but its frames end after {float(found):.2f}s"
            )
    if len(set(pts_list)) != len(pts_list):
        raise InvalidMediaError(f"{name}: two video frames share a timestamp; the file is broken")
    time_base = Fraction(video.time_base)
    return VideoProbe(
        format_name=format_name,
        codec=codec,
        width=int(first_frame.width),
        height=int(first_frame.height),
        time_base=time_base,
        start_time=pts_list[0] * time_base,
        rotation=int(round(first_frame.rotation or 0)),
        frame_pts=tuple(pts_list),
        average_rate=video.average_rate,
        audio=audio,
        last_duration=int(last_duration),
        stream_index=video.index,
        pix_fmt=first_frame.format.name,
        color_primaries=int(first_frame.color_primaries),
        color_trc=int(first_frame.color_trc),
        colorspace=int(first_frame.colorspace),
        color_range=int(first_frame.color_range),
    )
