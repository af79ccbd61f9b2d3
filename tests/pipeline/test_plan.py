from __future__ import annotations

import pytest

from pipeline.errors import InvalidRangeError
from pipeline.plan import ChunkPlan, SegmentPlan, frame_range, plan_chunks


def test_frame_range() -> None:
    assert frame_range(100, None, None) == (0, 100)
    assert frame_range(100, 10, None) == (10, 100)
    assert frame_range(100, None, 50) == (0, 50)
    assert frame_range(100, 99, 100) == (99, 100)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (-1, None, "negative"),
        (100, None, "past the last frame"),
        (0, 101, "past the end"),
        (50, 50, "empty"),
        (60, 40, "empty"),
    ],
)
def test_frame_range_refused(start: int | None, end: int | None, words: str) -> None:
    with pytest.raises(InvalidRangeError, match=words):
        frame_range(100, start, end)


def test_no_frames() -> None:
    with pytest.raises(InvalidRangeError):
        frame_range(0, None, None)


def test_sizes_that_divide() -> None:
    chunks = plan_chunks(0, 100, 50, 25)
    assert [(c.index, c.start, c.end) for c in chunks] == [(0, 0, 50), (1, 50, 100)]
    assert chunks[1].segments == (SegmentPlan(0, 50, 75), SegmentPlan(1, 75, 100))


def test_sizes_that_do_not_divide() -> None:
    chunks = plan_chunks(7, 100, 30, 8)
    assert [(c.start, c.end) for c in chunks] == [(7, 37), (37, 67), (67, 97), (97, 100)]
    assert [(s.index, s.start, s.end) for s in chunks[0].segments] == [
        (0, 7, 15),
        (1, 15, 23),
        (2, 23, 31),
        (3, 31, 37),
    ]
    assert chunks[-1] == ChunkPlan(3, 97, 100, (SegmentPlan(0, 97, 100),))


@pytest.mark.parametrize(("chunk", "segment"), [(1, 1), (3, 7), (7, 3), (1000, 999), (13, 13)])
def test_cover_every_frame_once(chunk: int, segment: int) -> None:
    chunks = plan_chunks(5, 105, chunk, segment)
    frames = [f for c in chunks for s in c.segments for f in range(s.start, s.end)]
    assert frames == list(range(5, 105))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.segments[0].start == c.start and c.segments[-1].end == c.end
        assert [s.index for s in c.segments] == list(range(len(c.segments)))
        assert all(0 < s.end - s.start <= segment for s in c.segments)


@pytest.mark.parametrize(("chunk", "segment"), [(0, 5), (5, 0), (-1, 5)])
def test_bad_sizes(chunk: int, segment: int) -> None:
    with pytest.raises(InvalidRangeError, match="at least 1"):
        plan_chunks(0, 10, chunk, segment)
