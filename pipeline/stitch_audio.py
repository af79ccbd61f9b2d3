"""The stitch's audio: each audio stream of the source for the span of the frames, copied
where the container holds its codec (whole videos), else decoded, cut to the sample and
encoded to AAC (see ``pipeline.stitch``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from pipeline.errors import InvalidMediaError
from pipeline.timeline import Clock, Key, Span

COPY_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"})  # in MP4
# the containers whose edit list skips a copied stream's priming (at negative times); Matroska
# has none: its muxer would move every stream later instead
EDIT_LIST_CONTAINERS = frozenset({"mp4", "mov"})
# the sample rate of audio whose source does not say (AAC frames of 1024 samples at it)
FALLBACK_RATE = 48_000
_SEEK_MARGIN = Fraction(1)  # seconds of audio read before t0, so the seek never lands late


def audio_packets(
    source: Any,
    stream: Any,
    span: Span,
    output: Any,
    container: str,
    copy_allowed: bool,
    clock: Clock,
) -> tuple[Any, Iterator[tuple[Key, Any]]]:
    """The output stream for the source's audio ``stream`` (a copy where the container holds
    its codec and ``copy_allowed``, else AAC), and its packets for ``span``."""
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name if ctx is not None else ""
    holds = COPY_AUDIO_CODECS if container == "mp4" else output.supported_codecs
    if copy_allowed and codec in holds:
        try:
            copy = output.add_stream_from_template(stream, opaque=True)
        except ValueError:
            pass
        else:
            edit_list = container in EDIT_LIST_CONTAINERS
            return copy, _copied_audio(source, stream, copy, span.t0, span.t1, clock, edit_list)
    rate = int(ctx.sample_rate or FALLBACK_RATE)
    channels = int(ctx.channels or 2)
    encoder = output.add_stream("aac", rate=rate, layout=_layout_name(channels))
    encoder.bit_rate = min(320_000, 96_000 * max(1, channels))
    encoder.time_base = Fraction(1, rate)
    return encoder, _encoded_audio(source, stream, encoder, span, clock)


def _layout_name(channels: int) -> str:
    names = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    if channels not in names:
        raise InvalidMediaError(f"the audio has {channels} channels; at most 8 are supported")
    return names[channels]


def _seek_audio(source: Any, stream: Any, t0: Fraction) -> None:
    time_base = stream.time_base
    target = math.floor((t0 - _SEEK_MARGIN) / time_base)
    if stream.start_time is not None:
        # at most a margin before the start, where an encoder's priming lies (AAC's first
        # packet is at -1024 when the start, after the edit list, is 0)
        target = max(target, stream.start_time - math.ceil(_SEEK_MARGIN / time_base))
    try:
        source.seek(target, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        source.seek(0)


def _copied_audio(
    source: Any, stream: Any, copy: Any, t0: Fraction, t1: Fraction, clock: Clock, edit_list: bool
) -> Iterator[tuple[Key, Any]]:
    """The packets whose middle lies in [t0, t1), copied (in ticks of ``clock``), after the
    ones the first of them needs: the packet just before it (an AAC frame overlaps its
    predecessor, so the decoder starts one early) and the discarded packets before that (an
    encoder's priming at a negative time, or an edit list's cut), which the output's edit
    list skips again as the source's does; without an ``edit_list``, none at a negative time."""
    _seek_audio(source, stream, t0)
    ticks = clock.whole(stream.time_base)  # the clock holds the stream's time base and rate
    fallback = clock.whole(Fraction(1024, stream.codec_context.sample_rate or FALLBACK_RATE))
    low, high, stop = clock.ceil(2 * t0), clock.ceil(2 * t1), clock.ceil(t1)
    lead: list[Any] | None = []  # a discarded run, then one packet; None: a packet was kept
    for packet in source.demux(stream):
        if not packet.size or packet.pts is None:
            continue
        if packet.is_discard:
            if lead is not None:
                lead = [*_discarded_run(lead), packet]
            continue
        begin = packet.pts * ticks
        if begin >= stop:
            break
        length = packet.duration * ticks if packet.duration else fallback
        if not low <= 2 * begin + length < high:  # its middle, in doubled ticks
            if lead is not None:
                lead = [*_discarded_run(lead), packet]
            continue
        needed = [p for p in lead or [] if edit_list or p.pts >= 0]
        for kept in [*needed, packet]:
            dts = kept.dts if kept.dts is not None else kept.pts
            kept.stream = copy
            yield dts * ticks, kept
        lead = None


def _discarded_run(lead: list[Any]) -> list[Any]:
    """``lead`` while it ends with a discarded packet, else nothing: a packet left out that
    was not discarded parts what comes after it from what came before."""
    return lead if lead and lead[-1].is_discard else []


def _encoded_audio(
    source: Any, stream: Any, encoder: Any, span: Span, clock: Clock
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
