"""Source and reference images are checked from their header, before anything decodes them."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import InvalidMediaError
from pipeline.faces import selection
from pipeline.images import check_image
from pipeline.limits import MediaLimits
from tests.media import make_clip, make_huge_png, make_png, make_text_file

LIMITS = MediaLimits()


# 16000^2 and 20000^2 are past Pillow's own ceiling (2 * 89478485 pixels) too: no size is named
@pytest.mark.parametrize("size", [8000, 16000, 20000])
def test_a_huge_png_is_refused_from_its_header(tmp_path: Path, size: int) -> None:
    path = make_huge_png(tmp_path / "bomb.png", size, size)
    assert path.stat().st_size < 100_000
    began = time.perf_counter()
    with pytest.raises(InvalidMediaError, match="pixels allowed \\(FACEFLEET_MAX_IMAGE_PIXELS\\)") as caught:
        check_image(path, LIMITS)
    assert time.perf_counter() - began < 0.2
    assert str(caught.value).startswith("bomb.png: ")
    if size == 8000:
        assert "8000x8000 is more than the 50000000 pixels" in str(caught.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp"])
def test_plain_images_pass(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"face{suffix}"
    assert cv2.imwrite(str(path), np.full((48, 64, 3), 127, np.uint8))
    assert check_image(path, LIMITS) == (64, 48)
    assert check_image(path, MediaLimits(max_image_pixels=64 * 48)) == (64, 48)
    with pytest.raises(InvalidMediaError, match="64x48 is more than the 3071 pixels"):
        check_image(path, MediaLimits(max_image_pixels=64 * 48 - 1))


def test_what_is_not_an_image_is_refused(tmp_path: Path) -> None:
    for path in (make_text_file(tmp_path / "notes.png"), make_clip(tmp_path / "clip.mp4", frames=3).path):
        with pytest.raises(InvalidMediaError, match="cannot be read as an image"):
            check_image(path, LIMITS)
    with pytest.raises(InvalidMediaError, match="no such file"):
        check_image(tmp_path / "missing.png", LIMITS)


def test_a_huge_source_image_is_never_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*args: object) -> None:
        raise AssertionError("cv2.imread was called")

    monkeypatch.setattr(selection.cv2, "imread", no_decode)
    with pytest.raises(InvalidMediaError, match="the source image bomb.png: 8000x8000 is more than"):
        selection.read_image(make_huge_png(tmp_path / "bomb.png", 8000, 8000), "source", LIMITS)


def test_a_plain_source_image_is_decoded(tmp_path: Path) -> None:
    image = selection.read_image(make_png(tmp_path / "face.png"), "source", LIMITS)
    assert image.shape == (48, 64, 3)
