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
    packets keep their source timestamps; the first kept one comes with the packet before
    it (AAC overlaps each frame with its predecessor) and the discarded packets before that
    (the encoder's priming, at a negative time), so the copy has the source's packets, and
    its edit list skips the priming as the source's does (Matroska has no edit list: there
    the packets at negative times are left out, or its muxer would move every stream later);
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from pipeline.demux import open_input
from pipeline.encode import mp4_options
from pipeline.errors import PipelineError
from pipeline.probe import VideoProbe
from pipeline.stitch_audio import FALLBACK_RATE, audio_packets
from pipeline.timeline import Clock, Key, Span

if TYPE_CHECKING:
    from av.container.core import Chapter  # a TypedDict of the stubs only

# --container names and FFmpeg's muxers
CONTAINERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska"}
_SUBTITLE_CODECS = {
    "mp4": frozenset({"mov_text"}),
    "mov": frozenset({"mov_text"}),
    "mkv": frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text"}),  # "srt": its decoder
}
# tags a muxer writes (brands, encoder, Matroska's statistics), not the user's
_MUXER_TAGS = frozenset(
    {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "vendor_id", "bps"}
)


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
        span = Span(start, end, t0, t1, t0 if start > 0 else Fraction(0))
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
    with open_input(path, decode_pictures=False) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size and not p.is_discard)


def _opened(source: SegmentSource) -> AbstractContextManager[Path]:
    return nullcontext(source) if isinstance(source, Path) else source()


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
    span: Span,
    out: Path,
    output_format: OutputFormat,
) -> None:
    with ExitStack() as stack:
        first_files = stack.enter_context(ExitStack())  # closed as soon as its packets are out
        # decoded while opened: its stream is the output's template, pixel format included
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
        clock = Clock(
            [template.time_base, probe.time_base]
            + [s.time_base for s in source.streams]
            + [
                Fraction(1, s.codec_context.sample_rate)
                for s in source.streams.audio
                if s.codec_context and s.codec_context.sample_rate
            ]
            + [Fraction(1, FALLBACK_RATE)]
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
                copy, packets = audio_packets(
                    reader, reader.streams[stream.index], span, output, output_format.container, whole, clock
                )
                _copy_stream_tags(stream, copy)
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


def _chapters(chapters: list[Chapter], span: Span, whole: bool) -> list[Chapter]:
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
    span: Span,
    video: Any,
    clock: Clock,
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
                container = stack.enter_context(open_input(path, decode_pictures=False))
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


def _subtitle_packets(
    source: Any, stream: Any, span: Span, output: Any, clock: Clock
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
