"""Which detected faces a processor works on: all, the largest, the left-most, or those near a reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import InvalidMediaError, PipelineError
from pipeline.faces.batched_detection import detect_all
from pipeline.faces.models import ArcFaceRecognizer, normalise
from pipeline.faces.types import Face, FaceDetector
from pipeline.images import check_image
from pipeline.limits import MediaLimits

SELECTOR_MODES = ("all", "largest", "leftmost", "reference")


def cosine_distance(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of normalised embeddings [N, D] to one [D]: 0 same, 2 opposite."""
    return 1.0 - embeddings @ reference.reshape(-1)


def select_faces(
    faces: list[Face], mode: str, reference: np.ndarray | None = None, max_distance: float = 0.6
) -> list[Face]:
    """The faces ``mode`` keeps; ``reference`` mode needs each face's embedding."""
    if not faces:
        return []
    if mode == "all":
        return list(faces)
    if mode == "largest":
        return [max(faces, key=lambda f: f.area)]
    if mode == "leftmost":
        return [min(faces, key=lambda f: float(f.box[0]))]
    if mode == "reference":
        if reference is None:
            raise PipelineError("face_selector reference needs a reference face")
        embedded = [f for f in faces if f.embedding is not None]
        if not embedded:
            return []
        distances = cosine_distance(np.stack([f.embedding for f in embedded]), reference)  # type: ignore[misc]
        return [f for f, d in zip(embedded, distances, strict=True) if d < max_distance]
    raise PipelineError(f"unknown face_selector {mode!r}; choose from {', '.join(SELECTOR_MODES)}")


def read_image(path: Path, role: str, limits: MediaLimits) -> np.ndarray:
    """Decode the image at ``path`` once its header has passed ``check_image``, so that an
    image too large for ``limits`` is never decoded."""
    try:
        check_image(path, limits)
    except InvalidMediaError as exc:
        raise InvalidMediaError(f"the {role} image {exc}") from None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"the {role} image {path} cannot be read as an image")
    return image


def identity_of(
    path: Path, role: str, detector: FaceDetector, recognizer: ArcFaceRecognizer, limits: MediaLimits
) -> np.ndarray:
    """The normalised embedding of the largest face in the image at ``path``."""
    image = read_image(path, role, limits)
    faces = detector.detect(image)
    if not faces:
        raise PipelineError(f"no face found in the {role} image {path.name}")
    largest = max(faces, key=lambda f: f.area)
    return recognizer.embed(image, [largest.kps])[0]


def average_identity(embeddings: list[np.ndarray]) -> np.ndarray:
    """Several sources as one identity: the mean of their normalised embeddings, normalised."""
    return normalise(np.mean(np.stack(embeddings), axis=0)).astype(np.float32)


@dataclass
class FaceFinder:
    """Detect, then select, faces in a batch of images; embeddings (reference mode) run batched."""

    detector: FaceDetector
    mode: str
    recognizer: ArcFaceRecognizer | None = None
    reference: np.ndarray | None = None
    max_distance: float = 0.6

    def find(self, images: list[np.ndarray]) -> list[list[Face]]:
        detected = detect_all(self.detector, images, getattr(self.detector, "batch_session", None))
        if self.mode == "reference" and self.recognizer is not None:
            crops = [
                self.recognizer.align(image, f.kps)[0]
                for image, faces in zip(images, detected, strict=True)
                for f in faces
            ]
            if crops:
                embeddings = normalise(self.recognizer.run(np.stack(crops)).astype(np.float32))
                flat = [f for faces in detected for f in faces]
                for face, embedding in zip(flat, embeddings, strict=True):
                    face.embedding = embedding
        return [select_faces(faces, self.mode, self.reference, self.max_distance) for faces in detected]


def selector_mode(options: Mapping[str, Any]) -> str:
    mode = str(options.get("face_selector", "all"))
    if mode not in SELECTOR_MODES:
        raise PipelineError(f"unknown face_selector {mode!r}; choose from {', '.join(SELECTOR_MODES)}")
    return mode
