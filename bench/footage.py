"""Bench inputs: footage-like (a real photograph, panned and zoomed, with film grain) and a
generated pattern (ffmpeg's testsrc2), each with a tone, encoded the way a camera or a phone
would leave them (high quality H.264, AAC).

Why grain and a moving photograph: x264's MB-tree and its lookahead earn their bits on
content whose detail persists from frame to frame while noise does not; on a synthetic
pattern they matter little, so a bench on it alone hides what a rate-control setting costs.
The photograph is the group photo that ships in the insightface package (a dependency).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np

QUIET = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
FPS = 25
GRAIN_SIGMA = 1.5  # luma levels: a fine grain that survives the input's own encoding
SOURCE_CRF = "16"  # the input's own quality: high, grain kept (~10 Mb/s at 720p)


def _view(photo: np.ndarray, t: float, width: int, height: int) -> np.ndarray:
    """The camera at time ``t`` (0..1): a slow zoom in and out while panning left to right,
    with sub-pixel motion (a camera's motion is not whole pixels)."""
    import cv2

    photo_h, photo_w = photo.shape[:2]
    zoom = 1.0 + 0.3 * math.sin(math.pi * t)
    view_w = min(photo_w, photo_h * width / height) / zoom
    view_h = view_w * height / width
    x = (photo_w - view_w) * (0.5 - 0.5 * math.cos(math.pi * t))
    y = (photo_h - view_h) * (0.5 + 0.3 * math.sin(2 * math.pi * t))
    scale = width / view_w
    matrix = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]])
    return cv2.warpAffine(
        photo, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def footage(path: Path, seconds: float, width: int = 1280, height: int = 720) -> Path:
    """A panned and zoomed photograph with temporal grain and a tone; kept between runs."""
    if path.exists():
        return path
    from facefleet.modes.demo import group_photo

    photo = group_photo()
    frames = round(seconds * FPS)
    rng = np.random.default_rng(28)  # the same grain every time: the same input every run
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    encode = subprocess.Popen(
        [
            *QUIET,
            *("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", SOURCE_CRF, "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-shortest", str(partial)),
        ],
        stdin=subprocess.PIPE,
    )
    assert encode.stdin is not None
    try:
        for index in range(frames):
            image = _view(photo, index / max(1, frames - 1), width, height).astype(np.float32)
            grain = rng.normal(0.0, GRAIN_SIGMA, size=(height, width, 1)).astype(np.float32)
            encode.stdin.write(np.clip(image + grain, 0, 255).astype(np.uint8).tobytes())
    finally:
        encode.stdin.close()
    if encode.wait() != 0:
        raise SystemExit(f"ffmpeg could not write {partial}")
    partial.rename(path)
    return path


def pattern(path: Path, seconds: float, width: int = 1280, height: int = 720) -> Path:
    """ffmpeg's testsrc2 with a tone (a generated pattern); kept between runs."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *QUIET,
                *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={FPS}:duration={seconds}"),
                *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
                *("-c:v", "libx264", "-preset", "veryfast", "-crf", SOURCE_CRF, "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-shortest", str(path)),
            ],
            check=True,
        )
    return path
