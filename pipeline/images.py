"""Checking a source or reference image from its header alone, before anything decodes it.

Pillow's ``Image.open`` reads the header and stops, so a PNG of a few kilobytes that claims
16000x16000 pixels is refused in milliseconds. (PyAV cannot do this: opening an image runs
its decoder to learn the size.)
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")


def check_image(path: Path, limits: MediaLimits) -> tuple[int, int]:
    """(width, height) of the PNG, JPEG, WebP or BMP image at ``path``; InvalidMediaError when
    it is something else or has more than ``limits.max_image_pixels`` pixels."""
    from PIL import Image  # only jobs with face images need Pillow

    path = Path(path)
    allowed = f"more than the {limits.max_image_pixels} pixels allowed (FACEFLEET_MAX_IMAGE_PIXELS)"
    if not path.is_file():
        raise InvalidMediaError(f"{path.name}: no such file")
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # Pillow's own ceiling, far above ours by default
        raise InvalidMediaError(f"{path.name}: the image has {allowed}") from None
    except Exception:  # a hostile header can make a plugin raise almost anything
        raise InvalidMediaError(f"{path.name}: cannot be read as an image (PNG, JPEG, WebP or BMP)") from None
    if width <= 0 or height <= 0:
        raise InvalidMediaError(f"{path.name}: cannot be read as an image (it claims {width}x{height})")
    if width * height > limits.max_image_pixels:
        raise InvalidMediaError(f"{path.name}: {width}x{height} is {allowed}")
    return width, height
