"""One segment encoded from the frames of a clip, as the chunk loop encodes it: the digest of
its bytes. Run in the test process and, as ``python -m tests.pipeline.identity CLIP THREADS``,
in fresh ones, so that the digests can be compared within and across processes."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from pipeline.encode import EncoderSettings, encode_segment
from pipeline.frames import Frame
from pipeline.probe import VideoProbe, probe
from pipeline.reader import read_frames


def decoded(clip: Path) -> tuple[VideoProbe, list[Frame]]:
    """Every frame of ``clip``, decoded with the reader's frame threads."""
    video = probe(clip)
    return video, list(read_frames(clip, video, 0, video.frame_count))


def encoded(frames: list[Frame], video: VideoProbe, out: Path, threads: int) -> bytes:
    """The segment's bytes (written to ``out``), with the engine's default x264 settings."""
    assert encode_segment(frames, out, video, EncoderSettings(threads=threads)) == len(frames)
    return out.read_bytes()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(clip: str, threads: str, out: str) -> None:
    video, frames = decoded(Path(clip))
    print(digest(encoded(frames, video, Path(out), int(threads))))


if __name__ == "__main__":
    main(*sys.argv[1:])
