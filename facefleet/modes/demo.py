"""A sample video for the demo and the benchmarks, made from a photo that ships inside the
insightface package: a slow pan and zoom over a group of faces, with a tone as audio.

Only the package's files are read, never imported: `make run` installs it without its
dependencies (scikit-image, scikit-learn, matplotlib...), which only the tests need."""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.x264_asm import x264_asm

AUDIO_RATE = 48_000
TONE_HZ = 440.0


def group_photo() -> np.ndarray:
    """The insightface package's group photo (BGR)."""
    return _insightface_image("t1.jpg", "sample photo")


def _insightface_image(name: str, what: str) -> np.ndarray:
    spec = importlib.util.find_spec("insightface")  # found, not imported
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0] if folders else "insightface") / "data" / "images" / name
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(
            f"the {what} is missing: {path} (it comes with the insightface package: "
            "`pip install --no-deps -c constraints.txt insightface`, as make run does)"
        )
    return image


def _camera_frame(photo: np.ndarray, t: float, width: int, height: int) -> np.ndarray:
    """The view at time t (0..1): zooming in slightly while panning left to right."""
    photo_h, photo_w = photo.shape[:2]
    zoom = 1.0 + 0.25 * math.sin(math.pi * t)
    view_w = min(photo_w, photo_h * width / height) / zoom
    view_h = view_w * height / width
    x = (photo_w - view_w) * t
    y = (photo_h - view_h) * 0.5
    matrix = np.array([[width / view_w, 0, -x * width / view_w], [0, height / view_h, -y * height / view_h]])
    return cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR)


def make_sample_video(
    out: Path, seconds: float = 8.0, width: int = 640, height: int = 360, fps: int = 25
) -> Path:
    """Write an H.264 + AAC MP4 sample; returns ``out``."""
    photo = group_photo()
    frames = round(seconds * fps)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        # x264 without its AVX-512 code, as the segments: the same sample every time (x264_asm)
        asm = {"x264-params": f"asm={x264_asm()}"} if x264_asm() else {}
        video = container.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "veryfast", **asm})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for index in range(frames):
            image = _camera_frame(photo, index / max(1, frames - 1), width, height)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = np.arange(round(seconds * AUDIO_RATE))
        tone = (0.2 * np.sin(2 * math.pi * TONE_HZ * samples / AUDIO_RATE)).astype(np.float32)
        block = 1024
        for start in range(0, len(tone), block):
            piece = tone[start : start + block].reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            sound.sample_rate, sound.pts = AUDIO_RATE, start
            container.mux(audio.encode(sound))
        container.mux(audio.encode())
    return out


def source_face(out: Path) -> Path:
    """A source face for swap demos: the aligned face shipped with insightface, padded so that
    a detector sees it whole."""
    face = _insightface_image("Tom_Hanks_54745.png", "sample face")
    padded = cv2.copyMakeBorder(face, 56, 56, 56, 56, cv2.BORDER_REPLICATE)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.resize(padded, (448, 448), interpolation=cv2.INTER_CUBIC))
    return out
