"""Gender and age of detected faces: InsightFace's genderage.onnx layout.

Input ``[N, 3, 96, 96]`` RGB, raw 0-255 values (mean 0, std 1); output ``[N, 3]``: the
female and male scores, then the age divided by 100. The crop is InsightFace's: the box's
centre, its longer side times 1.5 scaled to 96 pixels, no rotation.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pipeline.faces.types import Face

ATTRIBUTE_SIZE = 96
ATTRIBUTE_MARGIN = 1.5  # the crop's side, in box sides
AGE_SCALE = 100.0
GENDERS = ("female", "male")  # the order of the model's first two outputs


def attribute_crop(image: np.ndarray, box: np.ndarray, size: int = ATTRIBUTE_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` crop centred on ``box``, its longer side x 1.5 across."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    scale = size / (max(x2 - x1, y2 - y1) * ATTRIBUTE_MARGIN)
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    matrix = np.array(
        [[scale, 0.0, size / 2 - centre_x * scale], [0.0, scale, size / 2 - centre_y * scale]], np.float32
    )
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


class GenderAgeModel:
    """genderage.onnx: sets each face's ``gender`` and ``age``; the session is handed in."""

    size = ATTRIBUTE_SIZE

    def __init__(self, name: str, session: Any) -> None:
        self.name = name
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.one_at_a_time = session.get_inputs()[0].shape[0] == 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """RGB float crops [N, 3, 96, 96] -> [N, 3] (female, male, age / 100)."""
        if self.one_at_a_time:
            parts = [
                self.session.run(None, {self.input_name: batch[i : i + 1]})[0] for i in range(len(batch))
            ]
            return np.concatenate(parts, axis=0)
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])

    def estimate(self, image: np.ndarray, faces: list[Face]) -> None:
        if not faces:
            return
        crops = np.stack([attribute_crop(image, face.box) for face in faces])
        blob = np.ascontiguousarray(crops[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))
        for face, row in zip(faces, self.run(blob), strict=True):
            face.gender = GENDERS[int(np.argmax(row[:2]))]
            face.age = float(row[2]) * AGE_SCALE
