"""Tiny generated media for the pipeline tests.

Every video frame carries its own index in its pixels: a band of ``BITS`` big black/white
blocks across the top (bit i of the index, most significant first), and a second band
below it with the complement, so that :func:`read_index` can check what it read. The
blocks are large enough to survive lossy H.264 at the default settings and at odd sizes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.encode import mp4_options
from pipeline.x264_asm import x264_asm

BITS = 8  # indices 0..255: clips stay tiny
BAND = 8  # rows per band
AUDIO_RATE = 48_000
TONE_HZ = 440.0
VFR_DELTAS_MS = (40, 20, 60, 33, 47, 40, 25)


@dataclass(frozen=True)
class Clip:
    """What a generator wrote, to compare the pipeline's view against."""

    path: Path
    frames: int
    time_base: Fraction
    pts: tuple[int, ...]  # in time_base, as written (containers may rescale)
    shift: Fraction = Fraction(0)  # seconds the container moved every timestamp by (MPEG-TS does)

    def seconds(self, i: int) -> Fraction:
        return self.pts[i] * self.time_base + self.shift


def decode_bgr(path: Path) -> list[np.ndarray]:
    """Every picture of ``path``'s first video stream, as BGR arrays."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def stamp(index: int, width: int, height: int, shade: int = 0) -> np.ndarray:
    """A BGR image showing ``index`` as blocks; the rest is a gradient that moves with it."""
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    if height < 2 * BAND + 2 or width < 2 * BITS:
        raise ValueError(f"{width}x{height} is too small for the index code")
    xs = np.arange(width, dtype=np.int32)
    ys = np.arange(height, dtype=np.int32)[:, None]
    base = ((xs[None, :] * 2 + ys + index * 5 + shade) % 200 + 28).astype(np.uint8)
    image = np.repeat(base[:, :, None], 3, axis=2)
    image[:, :, 0] = (image[:, :, 0] // 2 + 60).astype(np.uint8)
    for bit in range(BITS):
        x0, x1 = _block(bit, width)
        on = (index >> (BITS - 1 - bit)) & 1
        image[0:BAND, x0:x1] = 255 if on else 0
        image[BAND : 2 * BAND, x0:x1] = 0 if on else 255
    return image


def _block(bit: int, width: int) -> tuple[int, int]:
    return bit * width // BITS, (bit + 1) * width // BITS


def read_index(image: np.ndarray) -> int:
    """The index stamped by :func:`stamp` into a (decoded) BGR or gray image."""
    gray = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    width = gray.shape[1]
    value = 0
    for bit in range(BITS):
        x0, x1 = _block(bit, width)
        inset = max(1, (x1 - x0) // 4)
        top = gray[2 : BAND - 2, x0 + inset : x1 - inset].mean()
        bottom = gray[BAND + 2 : 2 * BAND - 2, x0 + inset : x1 - inset].mean()
        if (top > 128) == (bottom > 128):
            raise ValueError(f"no readable index code (bit {bit}: {top:.0f} / {bottom:.0f})")
        value = (value << 1) | int(top > 128)
    return value


def frame_index(frame: av.VideoFrame) -> int:
    return read_index(frame.to_ndarray(format="bgr24"))


def make_clip(
    path: Path,
    *,
    width: int = 96,
    height: int = 64,
    frames: int = 30,
    fps: int | Fraction = 25,
    vfr: bool = False,
    bframes: bool = False,
    start: Fraction = Fraction(0),
    rotation: int = 0,
    audio: str | None = None,
    audio_delay: Fraction = Fraction(0),
    gop: int = 12,
    open_gop: bool = False,
) -> Clip:
    """Write an H.264 clip whose frame i shows index i.

    ``vfr``: irregular frame durations (milliseconds from ``VFR_DELTAS_MS``); ``bframes``:
    libx264 with B-frames (else none); ``start``: first frame's time in seconds;
    ``rotation``: display-matrix rotation (degrees, counter-clockwise); ``audio``: ``None``,
    ``"aac"`` or ``"pcm_s16le"`` (a tone, starting ``audio_delay`` seconds after the video);
    ``open_gop``: keyframes are recovery points whose leading B-frames use the GOP before.
    The container follows the file suffix (.mp4, .mov, .mkv).
    """
    time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
    offset = start / time_base
    if offset.denominator != 1:
        raise ValueError(f"start {start} is not a multiple of the time base {time_base}")
    pts = [int(offset)]
    for i in range(1, frames):
        pts.append(pts[-1] + (VFR_DELTAS_MS[i % len(VFR_DELTAS_MS)] if vfr else 1))
    end_seconds = (pts[-1] + (40 if vfr else 1)) * time_base

    path.parent.mkdir(parents=True, exist_ok=True)
    muxer_options = mp4_options(time_base) if path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", options=muxer_options) as container:
        params = f"bframes={3 if bframes else 0}:keyint={gop}:min-keyint={gop}:scenecut=0"
        if open_gop:
            params += ":open-gop=1"
        if asm := x264_asm():  # as the engine's segments: the same clip every generation
            params += f":asm={asm}"
        video = container.add_stream(
            "libx264", rate=fps, options={"crf": "16", "preset": "veryfast", "x264-params": params}
        )
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=AUDIO_RATE, layout="mono")
            sound.time_base = Fraction(1, AUDIO_RATE)
        for index, value in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(stamp(index, width, height), format="bgr24")
            frame.pts, frame.time_base = value, time_base
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            first = round((start + audio_delay) * AUDIO_RATE)
            last = round(end_seconds * AUDIO_RATE)
            fmt = "flt" if audio == "aac" else "s16"
            block = 1024
            for at in range(first, last, block):
                n = min(block, last - at)
                t = np.arange(at, at + n) / AUDIO_RATE
                tone = 0.3 * np.sin(2 * math.pi * TONE_HZ * t)
                data = tone.astype(np.float32) if fmt == "flt" else (tone * 32767).astype(np.int16)
                piece = av.AudioFrame.from_ndarray(data.reshape(1, -1), format=fmt, layout="mono")
                piece.sample_rate, piece.pts, piece.time_base = AUDIO_RATE, at, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(piece))
            container.mux(sound.encode())
    return Clip(path, frames, time_base, tuple(pts), _container_shift(path, pts[0] * time_base))


def _container_shift(path: Path, first: Fraction) -> Fraction:
    """MPEG-TS adds a mux delay to every timestamp; other containers keep them."""
    if path.suffix != ".ts":
        return Fraction(0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stored = min(p.pts for p in container.demux(stream) if p.pts is not None)
        return stored * stream.time_base - first


# ------------------------------------------------------------------------- hostile inputs


def make_text_file(path: Path) -> Path:
    path.write_text("this is not a video\n" * 50)
    return path


def make_truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``source``'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_faststart(source: Path, path: Path) -> Path:
    """``source`` remuxed with the index (moov) first, so that a truncated copy still opens."""
    with av.open(str(source)) as inp, av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        streams = {
            s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")
        }
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return path


def make_zero_frames(path: Path) -> Path:
    """A container with a video stream and no frames."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for at in range(0, AUDIO_RATE, 1024):
            data = np.zeros((1, 1024), np.float32)
            piece = av.AudioFrame.from_ndarray(data, format="flt", layout="mono")
            piece.sample_rate, piece.pts = AUDIO_RATE, at
            container.mux(sound.encode(piece))
        container.mux(sound.encode())
    return path


def make_png(path: Path, width: int = 64, height: int = 48) -> Path:
    with av.open(str(path), "w", format="image2") as container:
        video = container.add_stream("png", rate=1)
        video.width, video.height, video.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(stamp(0, width, height)[:, :, ::-1].copy(), format="rgb24")
        container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def make_huge_png(path: Path, width: int = 16000, height: int = 16000) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds a few rows of data (a few KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 8, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def make_huge_header_avi(path: Path, width: int = 16000, height: int = 16000) -> Path:
    """An AVI of three 16x16 raw frames whose headers (avih, strf) claim ``width`` x ``height``."""
    with av.open(str(path), "w", format="avi") as container:
        video = container.add_stream("rawvideo", rate=25)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="bgr24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
    data = bytearray(path.read_bytes())
    main_header = data.index(b"avih") + 8  # dwWidth, dwHeight are its 9th and 10th fields
    struct.pack_into("<II", data, main_header + 32, width, height)
    bitmap_info = data.index(b"strf") + 8  # BITMAPINFOHEADER: biSize, biWidth, biHeight
    struct.pack_into("<ii", data, bitmap_info + 4, width, height)
    path.write_bytes(bytes(data))
    return path


def make_playlist(path: Path, segment: Path) -> Path:
    """An HLS playlist naming ``segment`` (a local MPEG-TS file) by its relative name."""
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\n{segment.name}\n#EXT-X-ENDLIST\n")
    return path


def make_concat_script(path: Path, clip: Path) -> Path:
    """An FFmpeg concat script naming ``clip``; FFmpeg detects it by content, whatever the name."""
    path.write_text(f"ffconcat version 1.0\nfile {clip.name}\n")
    return path


def write_clip_of(path: Path, images: list[np.ndarray], fps: int = 25, crf: int = 16) -> Path:
    """An H.264 MP4 of ``images`` (BGR, all one size), one frame each, no audio; 4:4:4 for an
    odd size (H.264 cannot code it in 4:2:0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
