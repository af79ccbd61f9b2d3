"""Frame-exact reading of a range of frames: seek to the keyframe before it, decode forward.

Decoded frames are matched to the probe's frame list by pts. After a seek only frames from
the first keyframe the decoder outputs on are trusted (frames before it may reference
pictures that were never decoded); if the wanted first frame lies before that keyframe,
the read starts again from an earlier point, and at last from the start of the file.

On a hardware device (``hw_device``, see ``pipeline.hwaccel``) the same FFmpeg decoder
parses and times the frames, so they are matched the same way; they are brought back to the
pixel format the CPU decoder gives (NV12 -> yuv420p moves bytes, it changes none). A device
that cannot be opened leaves the decoding to the CPU, which gives the same frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from pipeline.demux import open_input
from pipeline.errors import InvalidMediaError, InvalidRangeError
from pipeline.frames import Frame
from pipeline.probe import VideoProbe

log = logging.getLogger(__name__)

# How many frames before the wanted one each retry seeks to; then the start of the file.
_BACKOFF = (0, 32, 256)
# Rows and columns a decoder may add to the probed size (coding-block padding); a picture
# larger than that (a parameter set that changes mid-stream) is refused, not allocated.
_PADDING = 64


class _LandedLate(Exception):
    """The seek landed on a keyframe after the wanted frame."""


def read_frames(
    path: Path, probe: VideoProbe, start: int, end: int, threads: int = 0, hw_device: str | None = None
) -> Iterator[Frame]:
    """Yield frames ``start..end-1`` of ``path`` as :class:`Frame` (index, source pts, decoded frame).
    ``threads``: the decoder's threads (0: as many as FFmpeg sees fit for the machine's cores);
    ``hw_device``: decode on that hardware device (None: the CPU)."""
    if not 0 <= start <= end <= probe.frame_count:
        raise InvalidRangeError(f"frames {start}-{end} are outside the video's 0-{probe.frame_count}")
    if start == end:
        return
    for back in (*_BACKOFF, None):
        seek_to = 0 if back is None else max(0, start - back)
        with _open(path, probe, threads, hw_device) as (container, stream):
            try:
                yield from _read(container, stream, probe, start, end, seek_to)
                return
            except _LandedLate:
                continue
    raise InvalidMediaError(f"{Path(path).name}: frame {start} cannot be decoded")  # pragma: no cover


@contextmanager
def _open(
    path: Path, probe: VideoProbe, threads: int, hw_device: str | None
) -> Iterator[tuple[av.container.InputContainer, VideoStream]]:
    """A fresh demuxer for each attempt: the last one reads from the very start, unseeked
    (some containers, MPEG-TS among them, deliver nothing after a seek to the first pts)."""
    max_pixels = (probe.width + _PADDING) * (probe.height + _PADDING)
    try:
        container = _open_on_device(path, max_pixels, hw_device)
    except av.FFmpegError as exc:
        raise InvalidMediaError(f"{Path(path).name}: cannot open the video ({exc})") from None
    with container:
        stream = container.streams[probe.stream_index]
        if not isinstance(stream, VideoStream):
            raise InvalidMediaError(f"{Path(path).name}: stream {probe.stream_index} is not the probed video")
        stream.thread_type = "AUTO"  # frame threads work with a hardware device too
        stream.codec_context.thread_count = threads
        yield container, stream


def _open_on_device(path: Path, max_pixels: int, hw_device: str | None) -> av.container.InputContainer:
    """The input, decoded on ``hw_device`` where it opens, else on the CPU."""
    if hw_device is not None:
        try:
            return open_input(path, max_pixels=max_pixels, hw_device=hw_device)
        except av.FFmpegError as exc:
            log.warning("cannot decode on %s (%s): decoding on the CPU", hw_device, exc)
    return open_input(path, max_pixels=max_pixels)


def _as_cpu_decoded(frame: VideoFrame, pix_fmt: str | None) -> VideoFrame:
    """``frame`` in ``pix_fmt``, the format the CPU decoder gives (None: as decoded). A
    hardware decoder's NV12, P010 or 16-bit 4:4:4 holds the same samples, laid out otherwise."""
    if not pix_fmt or frame.format.name == pix_fmt:
        return frame
    return frame.reformat(format=pix_fmt)


def _read(
    container: av.container.InputContainer,
    stream: VideoStream,
    probe: VideoProbe,
    start: int,
    end: int,
    seek_to: int,
) -> Iterator[Frame]:
    """One attempt: seek before frame ``seek_to`` (0: the start of the file) and decode
    forward. Raises _LandedLate before yielding anything when the seek went too far."""
    pts = probe.frame_pts
    from_start = seek_to == 0  # from the first packet, where every frame counts
    if not from_start:
        container.seek(pts[seek_to], stream=stream, backward=True, any_frame=False)
    anchor: int | None = -(2**63) if from_start else None
    expected = start
    name = Path(container.name).name
    cpu_format = probe.pix_fmt if stream.codec_context.is_hwaccel else None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                if anchor is None:
                    if not frame.key_frame:
                        continue
                    anchor = frame.pts
                    if anchor > pts[expected]:
                        if expected == start:
                            raise _LandedLate
                        raise InvalidMediaError(f"{name}: frame {expected} cannot be decoded")
                if frame.pts < pts[expected]:
                    continue
                if frame.pts > pts[expected]:
                    raise InvalidMediaError(f"{name}: frame {expected} is missing or cannot be decoded")
                yield Frame(expected, frame.pts, video_frame=_as_cpu_decoded(frame, cpu_format))
                expected += 1
                if expected == end:
                    return
    except av.FFmpegError as exc:
        raise InvalidMediaError(f"{name}: the video is corrupt at frame {expected} ({exc})") from None
    if anchor is None:  # no keyframe after the seek point (a long GOP in a byte-seeking container)
        raise _LandedLate
    raise InvalidMediaError(f"{name}: the video ends before frame {expected} (truncated?)")
