"""The kinds of generated clips, and a helper that runs the whole engine on one."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path

import av

from pipeline.encode import EncoderSettings, encode_segment
from pipeline.output_size import coded_size
from pipeline.plan import plan_chunks
from pipeline.probe import VideoProbe, probe
from pipeline.reader import read_frames
from pipeline.stitch import stitch
from pipeline.stitch_audio import COPY_AUDIO_CODECS
from tests.media import Clip, frame_index

# name -> (file name, make_clip options)
KINDS: dict[str, tuple[str, dict]] = {
    "cfr": ("cfr.mp4", {"frames": 40, "audio": "aac"}),
    "bframes": ("bframes.mp4", {"frames": 40, "bframes": True, "audio": "aac"}),
    "vfr": ("vfr.mp4", {"frames": 36, "vfr": True, "bframes": True, "audio": "aac"}),
    "vfr_mkv_pcm": ("vfr.mkv", {"frames": 36, "vfr": True, "audio": "pcm_s16le"}),
    "odd_rotated": (
        "odd.mov",
        {
            "frames": 30,
            "width": 161,
            "height": 91,
            "rotation": 90,
            "start": Fraction(2),
            "audio": "aac",
            "audio_delay": Fraction(1, 2),
        },
    ),
    "open_gop": ("open-gop.mp4", {"frames": 40, "bframes": True, "open_gop": True, "gop": 10}),
    "start_no_audio": ("start.mkv", {"frames": 32, "start": Fraction(8, 5), "bframes": True}),
    # MPEG-TS seeks by bytes; one keyframe only, so every seek lands before or after it
    "mpegts_long_gop": ("long-gop.ts", {"frames": 36, "gop": 250, "audio": "aac"}),
    # 23.976 fps from a start of 10 frames: segment starts are not whole milliseconds
    "ntsc_film": (
        "ntsc.mp4",
        {"frames": 40, "fps": Fraction(24000, 1001), "start": Fraction(1001, 2400), "audio": "aac"},
    ),
}


def run_engine(
    target: Path,
    probe: VideoProbe,
    start: int,
    end: int,
    chunk_frames: int,
    segment_frames: int,
    work: Path,
    settings: EncoderSettings | None = None,
) -> Path:
    """Plan, read, encode every segment of every chunk (one reader per chunk, as a worker
    does), then stitch; returns the output file."""
    settings = settings or EncoderSettings(crf=20, threads=2)
    work.mkdir(parents=True, exist_ok=True)
    segments = []
    for chunk in plan_chunks(start, end, chunk_frames, segment_frames):
        frames = read_frames(target, probe, chunk.start, chunk.end)
        for segment in chunk.segments:
            path = work / f"{chunk.index:03d}-{segment.index:03d}.mp4"
            count = segment.end - segment.start
            assert encode_segment(islice(frames, count), path, probe, settings) == count
            segments.append(path)
    out = work / "output.mp4"
    stitch(segments, target, probe, start, end, out)
    return out


def check_output(out: Path, clip: Clip, source: VideoProbe, start: int, end: int) -> None:
    """Frames [start, end) of ``clip``, with their timestamps: the source's for the whole
    video, moved to start at 0 for a trimmed start; audio of the same span."""
    result = probe(out)
    shift = clip.seconds(start) if start > 0 else Fraction(0)
    assert result.frame_count == end - start
    assert [p * result.time_base for p in result.frame_pts] == [
        clip.seconds(i) - shift for i in range(start, end)
    ]
    # an odd size is coded a pixel larger in H.264's 4:2:0 (its last column and row repeated)
    assert (result.width, result.height) == coded_size(source.width, source.height, None, "libx264")
    assert result.rotation == source.rotation
    with av.open(str(out)) as container:
        indices = [frame_index(f) for f in container.decode(container.streams.video[0])]
    assert indices == list(range(start, end))
    if source.audio is None:
        assert result.audio is None
        return
    assert result.audio is not None and result.audio.codec == "aac"
    t0, t1 = source.seconds(start), source.seconds(end)
    frame = max(source.frame_duration(i) for i in range(start, end)) * source.time_base
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        decoded = list(container.decode(stream))
    first = decoded[0].pts * decoded[0].time_base
    samples = sum(f.samples for f in decoded)
    audio_end = first + Fraction(samples, stream.sample_rate)
    source_audio = (
        source.audio.start_pts * source.audio.time_base if source.audio.start_pts is not None else 0
    )
    # a copy keeps the source's packets; an encoded track spans the frames' time exactly
    copied = start == 0 and end == source.frame_count and source.audio.codec in COPY_AUDIO_CODECS
    audio_start = max(t0, source_audio) if copied else t0
    assert abs(first - (audio_start - shift)) <= frame
    assert abs(audio_end - (t1 - shift)) <= frame
    assert abs((audio_end - first) - (t1 - audio_start)) <= frame
