"""One segment encoded from the frames of a clip, as the chunk loop encodes it: the digest of
its bytes. Run in the test process and, as ``python -m tests.pipeline.identity CLIP THREADS
OUT [FILL]``, in fresh ones, so that the digests can be compared within and across processes.
FILL (a byte, e.g. 255): the heap's free memory is filled with it before the encode, as if
earlier work had left those bytes there (glibc only)."""

from __future__ import annotations

import ctypes
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


def fill_free_heap(byte: int, blocks: int = 16, size: int = 1 << 20) -> None:
    """Leave ``byte`` in the heap's free memory, where the next allocations come from: large
    blocks filled and freed, kept in the heap (no trimming, and blocks of a frame's size
    served from the heap, not mapped afresh, which would read as zeros)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 256 << 20)
    libc.mallopt(m_mmap_threshold, 64 << 20)
    filled = [libc.malloc(size) for _ in range(blocks)]
    for block in filled:
        libc.memset(block, byte, size)
    libc.malloc(64)  # a block after them, kept: the freed ones do not merge into the heap's top
    for block in filled:
        libc.free(block)


def main(clip: str, threads: str, out: str, fill: str | None = None) -> None:
    video, frames = decoded(Path(clip))
    if fill is not None:
        fill_free_heap(int(fill))
    print(digest(encoded(frames, video, Path(out), int(threads))))


if __name__ == "__main__":
    main(*sys.argv[1:])
