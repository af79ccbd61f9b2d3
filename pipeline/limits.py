"""How large an input may be, so that a hostile file is refused before it is decoded whole.

Each limit is named in its refusal by the setting that changes it (``facefleet.config.settings``
reads ``FACEFLEET_MAX_PIXELS`` and the others into one of these).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    max_pixels: int = 7680 * 4320  # per video frame (8K)
    max_frames: int | None = None
    max_duration_s: float | None = None
    max_image_pixels: int = 50_000_000  # per source or reference image
