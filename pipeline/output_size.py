"""The size an output is coded at, and what a user is told about it (light: no PyAV, so the
API's task view can say it).

H.264 and HEVC code 4:2:0 (and 4:2:2's halved width) in whole chroma samples, and their
cropping fields count in 2-pixel steps there: an odd width or height cannot be coded, nor
padded and cropped back by one pixel. Such a frame is coded one pixel wider or taller, the
last column or row repeated (``pipeline.encode``), which every player plays; 4:4:4 and AV1
keep the exact size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the --codec names and the encoders PyAV's FFmpeg bundles for them
CODECS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
# the encoders whose subsampled chroma needs an even size in the direction it halves
_EVEN_CODERS = frozenset({"libx264", "libx265", "h264_nvenc", "hevc_nvenc"})
# pixel formats whose chroma is halved horizontally / vertically
_HALF_WIDTH = ("420", "422", "411", "410", "nv12", "nv21", "nv16")
_HALF_HEIGHT = ("420", "410", "nv12", "nv21")
KEEP_EXACT = "--pix-fmt yuv444p or --codec av1 keeps the exact size"


def coded_size(width: int, height: int, pix_fmt: str | None, encoder: str) -> tuple[int, int]:
    """The size ``encoder`` codes a ``width`` x ``height`` frame at in ``pix_fmt`` (None: the
    default, 4:2:0): one more column or row where it halves an odd size's chroma."""
    if encoder not in _EVEN_CODERS:
        return width, height
    pix_fmt = pix_fmt or "yuv420p"
    half_width = any(tag in pix_fmt for tag in _HALF_WIDTH)
    half_height = any(tag in pix_fmt for tag in _HALF_HEIGHT)
    return width + (width % 2 if half_width else 0), height + (height % 2 if half_height else 0)


def padding_note(width: int, height: int, coded: tuple[int, int], pix_fmt: str | None = None) -> str | None:
    """In words, what the coded size adds to the visible one (None: nothing)."""
    needs = "4:2:2 needs an even width" if "422" in (pix_fmt or "") else "4:2:0 needs even sizes"
    added = [name for name, more in (("column", coded[0] > width), ("row", coded[1] > height)) if more]
    if not added:
        return None
    return (
        f"{width}x{height} coded as {coded[0]}x{coded[1]} ({needs}; one replicated "
        f"{' and '.join(added)}); {KEEP_EXACT}"
    )


def output_view(probe: Mapping[str, Any] | None, options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A task's ``output``: the visible size, the coded one and ``padded`` (a note, or None);
    None before the task's input is probed."""
    if not probe or not probe.get("width") or not probe.get("height"):
        return None
    options = options or {}
    width, height = int(probe["width"]), int(probe["height"])
    encoder = CODECS.get(options.get("codec") or "h264", "libx264")
    pix_fmt = options.get("pix_fmt")
    coded = coded_size(width, height, pix_fmt, encoder)
    return {
        "width": width,
        "height": height,
        "coded_width": coded[0],
        "coded_height": coded[1],
        "padded": padding_note(width, height, coded, pix_fmt),
    }
