"""Stitching: the segments joined by stream copy, with the target's other streams, into one file.

* Video: every packet of every segment, in order, copied (no second encode). Each packet's
  time is checked against the probe's frame list, so a wrong or misplaced segment fails
  the stitch instead of shifting frames. The segments must share parameter sets (they do
  when they were encoded with the same settings, see ``pipeline.encode``).
* Audio, for the time range of the frames [start, end), from the first frame's pts to the
  end of the last frame (``t0``, ``t1``):
  - the whole video: stream copy when MP4 can hold the codec (AAC, MP3, AC-3, E-AC-3, ALAC,
    FLAC, Opus): a packet is kept when its midpoint lies in [t0, t1), so each end is within
    half a packet of the video's (about 11 ms for AAC at 48 kHz) and sync is kept because
    packets keep their source timestamps;
  - a trimmed range, or a codec MP4 cannot hold (PCM, Vorbis, ...): decoded, cut to exactly
    the samples in [t0, t1) (a copy could only cut on packet boundaries), with silence where
    the source has no sound in that span, encoded to AAC: the track lasts as long as the
    video, to the sample (the encoder's priming is skipped by the MP4 edit list).
* Every audio stream is handled so, each keeping its tags (language, title) and disposition;
  in MOV and Matroska a copy takes any codec the container holds.
* Subtitles: copied where the container holds the codec (mov_text in MP4/MOV; SubRip, ASS,
  WebVTT in Matroska), the cues that start in [t0, t1); others are left out, as are data
  streams, further video streams and streams of codecs FFmpeg does not know.
* Chapters (cut to the range) and the container's and streams' tags are kept; the target's
  rotation (display matrix) is written on the output video stream, the pixels are not turned.
* Container: MP4 (default), MOV or Matroska; ``faststart`` puts an MP4/MOV index first.
* Timestamps: the whole video keeps the source's (an MP4 edit list carries a non-zero
  start); a trimmed range is a clip of its own, moved to start at 0.
* Packets of all streams are interleaved here by time, so the muxer holds nothing back
  and memory does not grow with the video's length. ``fflags=+bitexact`` keeps library
  versions out, so the same inputs give the same bytes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from pipeline.demux import open_input
from pipeline.encode import mp4_options
from pipeline.errors import InvalidMediaError, PipelineError
from pipeline.probe import VideoProbe

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of the stubs only

COPY_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"})  # in MP4
# --container names and FFmpeg's muxers
CONTAINERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska"}
_SUBTITLE_CODECS = {
    "mp4": frozenset({"mov_text"}),
    "mov": frozenset({"mov_text"}),
    "mkv": frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text"}),  # "srt": its decoder
}
# the sample rate of audio whose source does not say (AAC frames of 1024 samples at it)
_FALLBACK_RATE = 48_000
# tags a muxer writes (brands, encoder, Matroska's statistics), not the user's
_MUXER_TAGS = frozenset(
    {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "vendor_id", "bps"}
)
_SEEK_MARGIN = Fraction(1)  # seconds of audio read before t0, so the seek never lands late


# A segment to read: a file, or a function that makes one available for the duration of a
# ``with`` block (a download that goes away afterwards), so that the stitch holds one segment
# at a time on disk however long the video is.
SegmentSource = Path | Callable[[], AbstractContextManager[Path]]


@dataclass(frozen=True)
class OutputFormat:
    container: str = "mp4"  # a key of CONTAINERS
    faststart: bool = True  # MP4/MOV: the index before the media


def stitch(
    segments: Sequence[SegmentSource],
    target: Path,
    probe: VideoProbe,
    start: int,
    end: int,
    out: Path,
    output_format: OutputFormat | None = None,
) -> None:
    """Join ``segments`` (frames [start, end) of ``target``, in order) into ``out``."""
    output_format = output_format or OutputFormat()
    if output_format.container not in CONTAINERS:
        raise PipelineError(f"unknown container {output_format.container!r}")
    if not segments:
        raise PipelineError("there are no segments to stitch")
    if not 0 <= start < end <= probe.frame_count:
        raise PipelineError(f"frames {start}-{end} are outside the video's 0-{probe.frame_count}")
    for path in segments:
        if isinstance(path, Path) and not path.is_file():
            raise PipelineError(f"segment {path.name} is missing")
    out = Path(out)
    t0, t1 = probe.seconds(start), probe.seconds(end)
    try:
        span = _Range(start, end, t0, t1, t0 if start > 0 else Fraction(0))
        _write(segments, Path(target), probe, span, out, output_format)
    except av.FFmpegError as exc:
        out.unlink(missing_ok=True)
        raise PipelineError(f"stitching failed: {exc}") from None
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    frames = count_video_frames(out)
    if frames != end - start:
        raise PipelineError(f"the stitched video has {frames} frames, expected {end - start}")


def count_video_frames(path: Path) -> int:
    with open_input(path) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size and not p.is_discard)


def _opened(source: SegmentSource) -> AbstractContextManager[Path]:
    return nullcontext(source) if isinstance(source, Path) else source()


@dataclass(frozen=True)
class _Range:
    """Frames [start, end) of the source, from ``t0`` to ``t1`` seconds, written ``shift``
    seconds earlier than in the source."""

    start: int
    end: int
    t0: Fraction
    t1: Fraction
    shift: Fraction


class _Clock:
    """Times as integer ticks of ``1/rate`` s, ``rate`` a common multiple of the time bases in
    play: the packets' merge keys and range checks then compare integers, not a ``Fraction``
    made per packet (half the stitch's Python time on a long video). A time base that does
    not divide it still gets exact, if slower, ``Fraction`` ticks."""

    def __init__(self, time_bases: Iterable[Fraction | None]) -> None:
        self.rate = math.lcm(*(Fraction(t).denominator for t in time_bases if t))

    def per(self, time_base: Fraction) -> int | Fraction:
        """Ticks per unit of ``time_base``."""
        ticks = Fraction(time_base) * self.rate
        return ticks.numerator if ticks.denominator == 1 else ticks

    def whole(self, time_base: Fraction) -> int:
        """Ticks per unit of a time base the clock was made with (always a whole number)."""
        ticks = self.per(time_base)
        if not isinstance(ticks, int):
            raise ValueError(f"time base {time_base} is not one of the clock's")
        return ticks

    def ceil(self, seconds: Fraction) -> int:
        """The first tick at or after ``seconds``."""
        return math.ceil(seconds * self.rate)


Key = int | Fraction  # a time in ticks of the stitch's clock


def _muxer_options(output_format: OutputFormat, probe: VideoProbe) -> dict[str, str]:
    if output_format.container == "mkv":
        return {"fflags": "+bitexact"}
    # a colr box for a source that tags its range but not all of its colours (the muxer
    # writes one anyway when they are all known)
    flags = "+write_colr" if probe.color_range else ""
    flags += "+faststart" if output_format.faststart else ""
    return mp4_options(probe.time_base, **({"movflags": flags} if flags else {}))


def _tags(metadata: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in metadata.items()
        if k.lower() not in _MUXER_TAGS and not k.startswith(("_", "NUMBER_OF"))
    }


def _write(
    segments: Sequence[SegmentSource],
    target: Path,
    probe: VideoProbe,
    span: _Range,
    out: Path,
    output_format: OutputFormat,
) -> None:
    with ExitStack() as stack:
        first_files = stack.enter_context(ExitStack())  # closed as soon as its packets are out
        first = first_files.enter_context(open_input(first_files.enter_context(_opened(segments[0]))))
        template = first.streams.video[0]
        output = stack.enter_context(
            av.open(
                str(out),
                "w",
                format=CONTAINERS[output_format.container],
                options=_muxer_options(output_format, probe),
            )
        )
        source = stack.enter_context(open_input(target))
        video = output.add_stream_from_template(template, opaque=True)
        _copy_stream_tags(source.streams[probe.stream_index], video)
        if probe.rotation:
            video.set_display_rotation(probe.rotation)
        _set_colour(video, probe)
        output.metadata.update(_tags(source.metadata))
        whole = span.start == 0 and span.end == probe.frame_count
        output.set_chapters(_chapters(source.chapters(), span, whole))
        clock = _Clock(
            [template.time_base, probe.time_base]
            + [s.time_base for s in source.streams]
            + [
                Fraction(1, s.codec_context.sample_rate)
                for s in source.streams.audio
                if s.codec_context and s.codec_context.sample_rate
            ]
            + [Fraction(1, _FALLBACK_RATE)]
        )
        streams: list[Iterator[tuple[Key, int, Any]]] = [
            _video_packets(
                (first, first_files),
                segments[1:],
                template.codec_context.extradata,
                probe,
                span,
                video,
                clock,
            )
        ]
        spare: Any = source  # read for its tags only so far: it demuxes the first kept stream
        for stream in source.streams:  # each read by a demuxer of its own, so they interleave
            if stream.codec_context is None:  # a codec this FFmpeg does not know: left out
                continue
            if stream.type == "audio":
                reader, spare = spare or stack.enter_context(open_input(target)), None
                packets = _audio_packets(
                    reader, reader.streams[stream.index], span, output, output_format, whole, clock
                )
            elif (
                stream.type == "subtitle"
                and stream.codec_context.name in _SUBTITLE_CODECS[output_format.container]
            ):
                reader, spare = spare or stack.enter_context(open_input(target)), None
                packets = _subtitle_packets(reader, reader.streams[stream.index], span, output, clock)
            else:
                continue
            streams.append(_numbered(packets, len(streams)))
        for _, _, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            output.mux(packet)


def _numbered(packets: Iterator[tuple[Key, Any]], order: int) -> Iterator[tuple[Key, int, Any]]:
    """Packets with their stream's place, which orders packets of the same time."""
    for time, packet in packets:
        yield time, order, packet


def _set_colour(video: Any, probe: VideoProbe) -> None:
    """The source's colour tags on the stream, for the container's own fields (MP4's colr box,
    Matroska's Colour): a range or matrix the bitstream's VUI leaves out stays known."""
    ctx = video.codec_context
    ctx.color_primaries, ctx.color_trc = probe.color_primaries, probe.color_trc
    ctx.colorspace, ctx.color_range = probe.colorspace, probe.color_range


def _copy_stream_tags(source: Any, copy: Any) -> None:
    copy.metadata.update(_tags(source.metadata))
    copy.disposition = source.disposition


def _chapters(chapters: list[Chapter], span: _Range, whole: bool) -> list[Chapter]:
    """The whole video's chapters as they are; a range's, those that overlap [t0, t1), cut
    to it and moved by the range's shift."""
    if whole:
        return chapters
    kept: list[Chapter] = []
    for chapter in chapters:
        base = chapter["time_base"] or Fraction(1)
        begin, end = max(chapter["start"] * base, span.t0), min(chapter["end"] * base, span.t1)
        if begin >= end:
            continue
        at = (begin - span.shift) / base, (end - span.shift) / base
        cut: Chapter = {
            "id": len(kept),
            "start": math.floor(at[0]),
            "end": math.ceil(at[1]),
            "time_base": base,
            "metadata": chapter["metadata"],
        }
        kept.append(cut)
    return kept


def _video_packets(
    first: tuple[Any, ExitStack],
    rest: Sequence[SegmentSource],
    extradata: bytes | None,
    probe: VideoProbe,
    span: _Range,
    video: Any,
    clock: _Clock,
) -> Iterator[tuple[Key, int, Any]]:
    """Every packet of the segments in order: ``first`` (already open, with what closes it),
    then each of ``rest``, opened only when the one before is used up."""
    start, end = span.start, span.end
    index = start
    frame_pts, source_ticks = probe.frame_pts, clock.per(probe.time_base)
    for number in range(1 + len(rest)):
        with first[1] if number == 0 else ExitStack() as stack:
            if number == 0:
                container = first[0]
            else:
                path = stack.enter_context(_opened(rest[number - 1]))
                container = stack.enter_context(open_input(path))
            stream = container.streams.video[0]
            name = Path(container.name).name
            if stream.codec_context.extradata != extradata:
                raise PipelineError(
                    f"segment {number} ({name}) was encoded with other settings than segment 0"
                )
            time_base = Fraction(stream.time_base or 0)
            shift = span.shift / time_base
            if shift.denominator != 1:
                raise PipelineError(
                    f"segment {number} ({name}): its time base cannot express the trim's start"
                )
            ticks = clock.per(time_base)
            for packet in container.demux(stream):
                if not packet.size or packet.is_discard:
                    continue
                if index >= end:
                    raise PipelineError(f"the segments hold more than the {end - start} frames expected")
                if packet.pts is None or packet.pts * ticks != frame_pts[index] * source_ticks:
                    got = None if packet.pts is None else packet.pts * time_base
                    raise PipelineError(
                        f"segment {number} ({name}): frame {index} is at {got}s, expected {probe.seconds(index)}s"
                    )
                dts = packet.dts if packet.dts is not None else packet.pts
                packet.pts, packet.dts = packet.pts - int(shift), dts - int(shift)
                packet.stream = video
                yield packet.dts * ticks, 0, packet
                index += 1
    if index != end:
        raise PipelineError(f"the segments hold {index - start} frames, expected {end - start}")


def _audio_packets(
    source: Any,
    stream: Any,
    span: _Range,
    output: Any,
    output_format: OutputFormat,
    copy_allowed: bool,
    clock: _Clock,
) -> Iterator[tuple[Key, Any]]:
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name if ctx is not None else ""
    holds = COPY_AUDIO_CODECS if output_format.container == "mp4" else output.supported_codecs
    if copy_allowed and codec in holds:
        try:
            copy = output.add_stream_from_template(stream, opaque=True)
        except ValueError:
            pass
        else:
            _copy_stream_tags(stream, copy)
            return _copied_audio(source, stream, copy, span.t0, span.t1, clock)
    rate = int(ctx.sample_rate or _FALLBACK_RATE)
    channels = int(ctx.channels or 2)
    encoder = output.add_stream("aac", rate=rate, layout=_layout_name(channels))
    encoder.bit_rate = min(320_000, 96_000 * max(1, channels))
    encoder.time_base = Fraction(1, rate)
    _copy_stream_tags(stream, encoder)
    return _encoded_audio(source, stream, encoder, span, clock)


def _subtitle_packets(
    source: Any, stream: Any, span: _Range, output: Any, clock: _Clock
) -> Iterator[tuple[Key, Any]]:
    """The cues that start in [t0, t1), copied, moved by the range's shift."""
    copy = output.add_stream_from_template(stream, opaque=True)
    _copy_stream_tags(stream, copy)
    time_base = Fraction(stream.time_base)
    shift, ticks = span.shift / time_base, clock.per(time_base)
    for packet in source.demux(stream):
        if not packet.size or packet.pts is None:
            continue
        begin = packet.pts * time_base
        if not span.t0 <= begin < span.t1:
            continue
        packet.pts = packet.dts = math.floor(packet.pts - shift)
        packet.stream = copy
        yield packet.pts * ticks, packet


def _layout_name(channels: int) -> str:
    names = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    if channels not in names:
        raise InvalidMediaError(f"the audio has {channels} channels; at most 8 are supported")
    return names[channels]


def _seek_audio(source: Any, stream: Any, t0: Fraction) -> None:
    time_base = stream.time_base
    target = math.floor((t0 - _SEEK_MARGIN) / time_base)
    if stream.start_time is not None and target <= stream.start_time:
        target = stream.start_time
    try:
        source.seek(target, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        source.seek(0)


def _copied_audio(
    source: Any, stream: Any, copy: Any, t0: Fraction, t1: Fraction, clock: _Clock
) -> Iterator[tuple[Key, Any]]:
    """The packets whose middle lies in [t0, t1), copied (in ticks of ``clock``)."""
    _seek_audio(source, stream, t0)
    ticks = clock.whole(stream.time_base)  # the clock holds the stream's time base and rate
    fallback = clock.whole(Fraction(1024, stream.codec_context.sample_rate or _FALLBACK_RATE))
    low, high, stop = clock.ceil(2 * t0), clock.ceil(2 * t1), clock.ceil(t1)
    for packet in source.demux(stream):
        if not packet.size or packet.pts is None or packet.is_discard:
            continue
        begin = packet.pts * ticks
        if begin >= stop:
            break
        length = packet.duration * ticks if packet.duration else fallback
        if not low <= 2 * begin + length < high:  # its middle, in doubled ticks
            continue
        dts = packet.dts if packet.dts is not None else packet.pts
        packet.stream = copy
        yield dts * ticks, packet


def _encoded_audio(
    source: Any, stream: Any, encoder: Any, span: _Range, clock: _Clock
) -> Iterator[tuple[Key, Any]]:
    t0, t1 = span.t0, span.t1
    _seek_audio(source, stream, t0)
    rate = stream.codec_context.sample_rate
    out_base = Fraction(1, rate)
    ticks = clock.per(encoder.time_base)  # the time base of the packets it gives
    # the track spans the video's [t0, t1) to the sample: silence where the source has none
    next_pts, end_pts = round((t0 - span.shift) * rate), round((t1 - span.shift) * rate)
    started = False
    shape: av.AudioFrame | None = None  # a decoded frame, whose format the silence takes
    done = False
    for packet in source.demux(stream):
        if done:
            break
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue  # a damaged audio packet: its samples are skipped
        for frame in frames:
            if frame.pts is None:
                continue
            begin = frame.pts * frame.time_base
            if begin >= t1:
                done = True
                break
            first = max(0, math.ceil((t0 - begin) * rate))
            last = min(frame.samples, math.ceil((t1 - begin) * rate))
            if last <= first:
                continue
            pieces = [_cut(frame, first, last, encoder.layout.name)]
            if not started:  # the source's audio starts after the first frame
                started, shape = True, frame
                at = round((begin + Fraction(first, rate) - span.shift) * rate)
                if at > next_pts:
                    pieces.insert(0, _silence(frame, at - next_pts, encoder.layout.name))
            for piece in pieces:
                piece.pts, piece.time_base, piece.sample_rate = next_pts, out_base, rate
                next_pts += piece.samples
                for out in encoder.encode(piece):
                    yield out.dts * ticks, out
    if shape is not None and next_pts < end_pts:  # the source's audio ends before the last frame
        tail = _silence(shape, end_pts - next_pts, encoder.layout.name)
        tail.pts, tail.time_base, tail.sample_rate = next_pts, out_base, rate
        for out in encoder.encode(tail):
            yield out.dts * ticks, out
    for out in encoder.encode(None):
        yield out.dts * ticks, out


def _silence(like: av.AudioFrame, samples: int, layout: str) -> av.AudioFrame:
    """``samples`` samples of silence in the format of ``like``."""
    import numpy as np  # only for a cut or padded audio frame

    data = like.to_ndarray()
    channels = len(like.layout.channels)
    shape = (data.shape[0], samples) if like.format.is_planar else (1, samples * channels)
    zeros: Any = np.zeros(shape, dtype=data.dtype)
    return av.AudioFrame.from_ndarray(zeros, format=like.format.name, layout=layout)


def _cut(frame: av.AudioFrame, first: int, last: int, layout: str) -> av.AudioFrame:
    """Samples [first, last) of ``frame`` as a new frame (in ``layout``, same channel count)."""
    import numpy as np

    data = frame.to_ndarray()
    if frame.format.is_planar:
        data = data[:, first:last]
    else:
        channels = len(frame.layout.channels)
        data = data[:, first * channels : last * channels]
    piece: Any = np.ascontiguousarray(data)
    return av.AudioFrame.from_ndarray(piece, format=frame.format.name, layout=layout)
