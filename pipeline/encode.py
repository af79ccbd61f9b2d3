"""Encoding one segment: a self-contained MP4 holding a run of frames with their source timestamps.

Choices (the stitch depends on them):

* Container: MP4. Its video timescale is the source time base's denominator (doubled until
  it is at least 10000), so source timestamps survive exactly; a non-zero start is kept by
  an edit list, which the demuxer turns back into the same pts.
* No B-frames: every segment then has dts == pts, starts on an IDR frame and needs no
  decoder delay, so segments joined by stream copy always give increasing dts, whatever
  the frame rate (variable included). It costs some bits at equal quality.
* Same settings for every segment (the x264 options and a fixed thread count), so the
  segments share one set of parameter sets (avcC) and join by stream copy; the output is
  the same bytes on any machine. ``fflags=+bitexact`` keeps library versions out of the file.
* Codecs: libx264, libx265 or libsvtav1, each without B-frames, with the source's colour
  tags (primaries, transfer, matrix, range) and its bit depth unless a pix_fmt is asked:
  a 10-bit source is coded 10-bit (High 10, Main 10, AV1 Main).
* Odd sizes: AV1 codes any size in 4:2:0. H.264 and HEVC cannot: their 4:2:0 (and 4:2:2's
  halved width) counts in whole chroma samples, and their cropping fields in 2-pixel steps,
  so an odd size cannot be padded and cropped back by one pixel. For them a 4:2:0 frame of
  an odd size is coded one pixel wider or taller (``pipeline.output_size``), its last column
  or row repeated, which every player plays; the task says so, and whatever compares the
  output with the input crops the padding off. A 4:2:0 source's chroma planes already cover
  the padded size (ceil(w/2) x ceil(h/2)), so only its luma grows and every source sample
  stays. ``yuv444p`` (High 4:4:4 / Main 4:4:4) and AV1 keep the exact size.
* NVENC (``h264_nvenc``, ``hevc_nvenc``, see ``pipeline.hwaccel``): options mirroring x264's
  (constant quality, no B-frames, fixed keyframe interval); a pixel format it does not code
  as it is (10-bit 4:2:0) takes the CPU encoder it stands in for.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType
from av.video.plane import VideoPlane
from av.video.stream import VideoStream

from pipeline.errors import PipelineError
from pipeline.frames import Frame
from pipeline.hwaccel import NVENC, encoder_coding, nvenc_options
from pipeline.output_size import coded_size
from pipeline.probe import VideoProbe
from pipeline.x264_asm import x264_asm

if TYPE_CHECKING:
    import numpy as np

_MIN_TRACK_TIMESCALE = 10_000
# a full disk or quota: the host's fault, not the input's
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# x264's preset names as SVT-AV1's numbered presets (0 slowest .. 13 fastest)
_SVT_PRESETS = {
    "ultrafast": 12,
    "superfast": 11,
    "veryfast": 10,
    "faster": 9,
    "fast": 8,
    "medium": 6,
    "slow": 5,
    "slower": 4,
    "veryslow": 2,
}


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    pix_fmt: str | None = None  # None: 4:2:0 at the source's bit depth (8 or 10)
    threads: int = 4  # fixed, not auto: the bytes then do not depend on the machine


def default_pix_fmt(source_pix_fmt: str) -> str:
    """4:2:0 at the source's depth: 10-bit for a source of more than 8 bits, else 8-bit."""
    try:
        bits = av.VideoFormat(source_pix_fmt).components[0].bits
    except (ValueError, IndexError):
        bits = 8
    return "yuv420p10le" if bits > 8 else "yuv420p"


def padded(picture: av.VideoFrame, width: int, height: int, pix_fmt: str) -> av.VideoFrame:
    """``picture`` in ``pix_fmt`` at ``width`` x ``height`` (its coded size, at most one pixel
    more each way), its last column and row repeated. A picture already in ``pix_fmt`` keeps
    its samples: its chroma planes already have the coded size's, only the luma grows."""
    import numpy as np  # only for an odd size

    if picture.format.name != pix_fmt:
        picture = picture.reformat(format=pix_fmt)  # as the encoder would, at the visible size
    out = av.VideoFrame(width, height, pix_fmt)
    for source, target in zip(picture.planes, out.planes, strict=True):
        grow = ((0, target.height - source.height), (0, target.width - source.width))
        _samples(out, target)[:] = np.pad(_samples(picture, source), grow, "edge")
    out.colorspace, out.color_range = picture.colorspace, picture.color_range
    return out


def visible(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """A decoded ``frame`` cut to the input's ``width`` x ``height`` in its own samples (an odd
    size's padding off), so that its colour conversion is the input's: cut after a conversion
    to RGB, the chroma of a 642-wide frame is interpolated at other places than a 641-wide one's."""
    if (frame.width, frame.height) == (width, height):
        return frame
    out = av.VideoFrame(width, height, frame.format.name)
    for source, target in zip(frame.planes, out.planes, strict=True):
        _samples(out, target)[:] = _samples(frame, source)[: target.height, : target.width]
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


def _samples(frame: av.VideoFrame, plane: VideoPlane) -> np.ndarray:
    """A writable (height, width) view of a planar ``frame``'s ``plane`` (row padding left out)."""
    import numpy as np

    dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
    rows = np.frombuffer(memoryview(plane), dtype=dtype).reshape(plane.height, -1)
    return rows[:, : plane.width]


def mp4_options(time_base: Fraction, **extra: str) -> dict[str, str]:
    """Muxer options that keep timestamps exact: the movie timescale (where edit lists, and so
    a non-zero start, are counted) is set to the video track's own timescale instead of 1/1000 s,
    which would round a start such as 1001/400 s."""
    timescale = time_base.denominator
    while timescale < _MIN_TRACK_TIMESCALE:  # as the MP4 muxer picks the video track's timescale
        timescale *= 2
    return {"fflags": "+bitexact", "movie_timescale": str(timescale), **extra}


def encoder_options(settings: EncoderSettings) -> dict[str, str]:
    if settings.codec in NVENC.values():
        return nvenc_options(settings.crf, settings.preset)
    if settings.codec == "libsvtav1":
        # low delay: no frame reordering (pred-struct 1), as for the others
        return {
            "crf": str(settings.crf),
            "preset": str(_SVT_PRESETS.get(settings.preset, 10)),
            "svtav1-params": "pred-struct=1",
        }
    if settings.codec == "libx265":
        # no B-frames; frame threads fixed (x265 picks them from the machine's cores, and
        # they change the bits); log-level quiets x265's banner on stderr
        return {
            "crf": str(settings.crf),
            "preset": settings.preset,
            "x265-params": f"bframes=0:frame-threads={settings.threads}:log-level=error",
        }
    if settings.codec == "libx264":
        # x264's own defaults otherwise (MB-tree, the preset's rc-lookahead), as the ffmpeg
        # CLI gives them: without MB-tree the same CRF costs up to 3x the bits on footage.
        # Not its AVX-512 functions: one of them lets heap garbage into MB-tree
        # (pipeline/x264_asm.py); bytes stay the same run to run (tests/pipeline/test_identity.py)
        asm = x264_asm()
        return {
            "crf": str(settings.crf),
            "preset": settings.preset,
            "x264-params": "bframes=0" + (f":asm={asm}" if asm else ""),
        }
    return {"crf": str(settings.crf), "preset": settings.preset, "bf": "0"}


def add_video_stream(
    container: av.container.OutputContainer,
    probe: VideoProbe,
    settings: EncoderSettings,
    width: int,
    height: int,
    pix_fmt: str,
) -> VideoStream:
    """The segment's video stream: codec, coded size (``width`` x ``height``, see
    ``pipeline.output_size``), pixel format, time base and colour tags."""
    stream = cast(VideoStream, container.add_stream(settings.codec, options=encoder_options(settings)))
    stream.width, stream.height = width, height
    stream.pix_fmt = pix_fmt
    stream.time_base = probe.time_base
    ctx = cast(VideoCodecContext, stream.codec_context)
    ctx.time_base = probe.time_base
    if probe.average_rate:
        ctx.framerate = probe.average_rate
    ctx.thread_count = settings.threads
    # frame threads, as the ffmpeg CLI gives x264: PyAV's default (slice threads) makes x264
    # cut every picture into slices, which codes worse and keeps fewer cores busy
    ctx.thread_type = "FRAME"
    ctx.flags |= av.codec.context.Flags.bitexact  # type: ignore[attr-defined]
    ctx.color_primaries, ctx.color_trc = probe.color_primaries, probe.color_trc
    ctx.colorspace, ctx.color_range = probe.colorspace, probe.color_range
    if settings.codec in ("libx265", NVENC["libx265"]):
        ctx.codec_tag = "hvc1"  # parameter sets in the sample entry, as Apple players want
    return stream


def encode_segment(frames: Iterable[Frame], out: Path, probe: VideoProbe, settings: EncoderSettings) -> int:
    """Encode ``frames`` into ``out`` (MP4), each at its source pts; returns the frames written.

    No file is written for an empty ``frames``.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    out = Path(out)
    if first is None:
        out.unlink(missing_ok=True)
        return 0
    width, height = first.width, first.height
    pix_fmt = settings.pix_fmt or default_pix_fmt(probe.pix_fmt)
    settings = replace(settings, codec=encoder_coding(settings.codec, pix_fmt))
    coded = coded_size(width, height, pix_fmt, settings.codec)
    written = 0
    last_pts: int | None = None
    container = av.open(str(out), "w", format="mp4", options=mp4_options(probe.time_base))
    try:
        stream = add_video_stream(container, probe, settings, *coded, pix_fmt)

        frame: Frame | None = first
        while frame is not None:
            if frame.width != width or frame.height != height:
                raise PipelineError(
                    f"frame {frame.index} is {frame.width}x{frame.height}, the segment is {width}x{height}"
                )
            if last_pts is not None and frame.pts <= last_pts:
                raise PipelineError(f"frame {frame.index} is out of order (pts {frame.pts} after {last_pts})")
            picture = frame.to_video_frame()
            if coded != (width, height):
                picture = padded(picture, *coded, pix_fmt)
            picture.pts = frame.pts
            picture.time_base = probe.time_base
            picture.pict_type = PictureType.NONE  # no keyframes forced by the decoder's picture types
            container.mux(stream.encode(picture))
            last_pts = frame.pts
            written += 1
            frame = next(iterator, None)
        container.mux(stream.encode(None))
    except av.FFmpegError as exc:
        container.close()
        out.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise  # the host's disk, not the input: kept for the caller to tell apart
        raise PipelineError(f"encoding failed ({settings.codec}): {exc}") from None
    except BaseException:
        container.close()
        out.unlink(missing_ok=True)
        raise
    container.close()
    return written
