"""What the face models exchange: a detected face and the model protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Face:
    """One detected face in image coordinates: box (x1, y1, x2, y2), score, five keypoints.

    The keypoints are, in order: left eye, right eye, nose tip, left and right mouth corners
    (as seen in the image), the order InsightFace's alignment template expects.
    """

    box: np.ndarray  # float32 [4]
    score: float
    kps: np.ndarray  # float32 [5, 2]
    embedding: np.ndarray | None = None  # float32 [512], L2-normalised
    gender: str | None = None  # "female" or "male", where an attribute model ran
    age: float | None = None  # years, where an attribute model ran

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


class FaceModel(Protocol):
    """One ONNX model behind a small class: its session is handed in, its layout checked."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...
