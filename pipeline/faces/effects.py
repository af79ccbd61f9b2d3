"""Pixel effects on face regions: blur, pixelate, and the debugger's drawing."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.types import Face

ANONYMIZE_MARGIN = 0.25  # fraction of the box size added on each side
BLUR_KERNEL_FRACTION = 1.0  # Gaussian kernel as a fraction of the region's shorter side
BLUR_PASSES = 3
PIXELATE_BLOCKS = 6  # blocks across the region's shorter side
DEBUG_BOX_COLOUR = (0, 255, 0)
DEBUG_KPS_COLOUR = (0, 0, 255)
DEBUG_TEXT_COLOUR = (255, 255, 255)


def _region(face: Face, width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = (float(v) for v in face.box)
    margin_x, margin_y = (x2 - x1) * ANONYMIZE_MARGIN, (y2 - y1) * ANONYMIZE_MARGIN
    left, top = max(0, int(x1 - margin_x)), max(0, int(y1 - margin_y))
    right, bottom = min(width, int(np.ceil(x2 + margin_x))), min(height, int(np.ceil(y2 + margin_y)))
    if right - left < 2 or bottom - top < 2:
        return None
    return left, top, right, bottom


def blur(region: np.ndarray) -> np.ndarray:
    side = min(region.shape[:2])
    kernel = max(3, int(side * BLUR_KERNEL_FRACTION) | 1)
    for _ in range(BLUR_PASSES):
        region = cv2.GaussianBlur(region, (kernel, kernel), 0)
    return region


def pixelate(region: np.ndarray) -> np.ndarray:
    height, width = region.shape[:2]
    block = max(1, min(height, width) // PIXELATE_BLOCKS)
    small = cv2.resize(
        region, (max(1, width // block), max(1, height // block)), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def anonymize(image: np.ndarray, faces: list[Face], mode: str) -> np.ndarray:
    effect = pixelate if mode == "pixelate" else blur
    result = image.copy()
    height, width = image.shape[:2]
    for face in faces:
        region = _region(face, width, height)
        if region is None:
            continue
        left, top, right, bottom = region
        result[top:bottom, left:right] = effect(result[top:bottom, left:right])
    return result


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    result = image.copy()
    for face in faces:
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        cv2.rectangle(result, (x1, y1), (x2, y2), DEBUG_BOX_COLOUR, 2)
        for x, y in face.kps:
            cv2.circle(result, (round(float(x)), round(float(y))), 2, DEBUG_KPS_COLOUR, -1)
        cv2.putText(
            result,
            f"{face.score:.2f}",
            (x1, max(0, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            DEBUG_TEXT_COLOUR,
            1,
        )
    return result
