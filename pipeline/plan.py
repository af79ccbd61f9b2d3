"""Splitting a frame range into chunks (one worker task each) and segments (one encoded file each)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import InvalidRangeError


@dataclass(frozen=True)
class SegmentPlan:
    index: int  # position within its chunk
    start: int  # frame index into the probe's frame list
    end: int  # exclusive


@dataclass(frozen=True)
class ChunkPlan:
    index: int
    start: int
    end: int
    segments: tuple[SegmentPlan, ...]


def frame_range(frame_count: int, trim_start: int | None, trim_end: int | None) -> tuple[int, int]:
    """The frames [start, end) to process: the whole video unless trimmed (end exclusive)."""
    if frame_count < 1:
        raise InvalidRangeError("the video has no frames")
    start = 0 if trim_start is None else trim_start
    end = frame_count if trim_end is None else trim_end
    if start < 0:
        raise InvalidRangeError(f"trim start {start} is negative")
    if start >= frame_count:
        raise InvalidRangeError(
            f"trim start {start} is past the last frame: the video has {frame_count} frames (0-{frame_count - 1})"
        )
    if end > frame_count:
        raise InvalidRangeError(f"trim end {end} is past the end: the video has {frame_count} frames")
    if end <= start:
        raise InvalidRangeError(f"the frame range {start}-{end} is empty (the end is exclusive)")
    return start, end


def plan_chunks(start: int, end: int, chunk_frames: int, segment_frames: int) -> list[ChunkPlan]:
    """Chunks of ``chunk_frames`` frames covering [start, end), each split into segments of
    ``segment_frames`` frames; the last chunk and each chunk's last segment may be shorter."""
    if chunk_frames < 1:
        raise InvalidRangeError(f"chunk size must be at least 1 frame, not {chunk_frames}")
    if segment_frames < 1:
        raise InvalidRangeError(f"segment size must be at least 1 frame, not {segment_frames}")
    if start < 0 or end <= start:
        raise InvalidRangeError(f"the frame range {start}-{end} is empty or negative")
    chunks = []
    for index, chunk_start in enumerate(range(start, end, chunk_frames)):
        chunk_end = min(end, chunk_start + chunk_frames)
        segments = tuple(
            SegmentPlan(i, s, min(chunk_end, s + segment_frames))
            for i, s in enumerate(range(chunk_start, chunk_end, segment_frames))
        )
        chunks.append(ChunkPlan(index, chunk_start, chunk_end, segments))
    return chunks
