"""The watermark itself, on real frames: what it costs (PSNR against the unmarked frame),
that it is deterministic, what the error-correcting code corrects, and that unmarked frames
carry nothing."""

from __future__ import annotations

import av
import numpy as np
import pytest

from facefleet.modes.demo import make_sample_video
from pipeline import ecc
from pipeline.frames import Frame
from pipeline.watermark import CODED_BITS, Votes, Watermarker, frame_luma, short_id

TASK_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[av.VideoFrame]:
    clip = make_sample_video(tmp_path_factory.mktemp("wm") / "clip.mp4", seconds=2, width=640, height=360)
    with av.open(str(clip)) as container:
        return list(container.decode(video=0))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def _marked(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
    marker = Watermarker(TASK_ID)
    return [
        f.to_video_frame() for f in marker.process([Frame(i, i, video_frame=v) for i, v in enumerate(frames)])
    ]


def test_marked_frames_keep_40_db_against_the_unmarked_ones(frames):
    marked = _marked(frames)
    luma = [_psnr(frame_luma(a), frame_luma(b)) for a, b in zip(frames, marked, strict=True)]
    colour = [
        _psnr(a.to_ndarray(format="bgr24"), b.to_ndarray(format="bgr24"))
        for a, b in zip(frames, marked, strict=True)
    ]
    print(f"PSNR luma min {min(luma):.2f} dB, RGB min {min(colour):.2f} dB over {len(frames)} frames")
    assert min(luma) >= 40.0 and min(colour) >= 40.0
    for original, mark in zip(frames, marked, strict=True):  # the chroma planes pass untouched
        assert bytes(original.planes[1]) == bytes(mark.planes[1])
        assert bytes(original.planes[2]) == bytes(mark.planes[2])


def test_marking_is_deterministic(frames):
    first, second = _marked(frames[:5]), _marked(frames[:5])
    assert [bytes(f.planes[0]) for f in first] == [bytes(f.planes[0]) for f in second]


def test_the_votes_of_marked_frames_name_the_task_and_unmarked_ones_nothing(frames):
    votes = Votes()
    for frame in _marked(frames[:25]):
        votes.add(frame_luma(frame))
    found = votes.decode()
    assert found is not None and found.short_id == short_id(TASK_ID)
    unmarked = Votes()
    for frame in frames:
        unmarked.add(frame_luma(frame))
    assert unmarked.decode() is None


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "bgr24"])
def test_other_pixel_formats_are_marked_in_their_luma(frames, pix_fmt):
    source = frames[0].reformat(format=pix_fmt)
    marked = _marked([source])[0]  # RGB: marked in the luma of its 4:4:4 form
    as_seen = "bgr24" if pix_fmt == "bgr24" else "gray"
    before, after = (f.reformat(format=as_seen).to_ndarray() for f in (source, marked))
    assert 40.0 <= _psnr(before, after) < 60.0
    votes = Votes()
    votes.add(frame_luma(marked))
    assert votes.decode() is not None and votes.decode().short_id == short_id(TASK_ID)


def test_the_code_corrects_a_tenth_of_its_bits_wrong():
    rng = np.random.default_rng(7)
    message = rng.integers(0, 2, 80).astype(np.uint8)
    coded = ecc.encode(message)
    assert len(coded) == CODED_BITS
    soft = (2.0 * coded - 1.0) * 1.0
    flipped = rng.choice(len(coded), len(coded) // 10, replace=False)
    soft[flipped] *= -1
    assert np.array_equal(ecc.decode(soft), message)
