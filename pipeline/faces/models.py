"""The face models after detection, one small class each; sessions are handed in.

Each takes aligned crops (N x S x S x 3 uint8 BGR) and runs them in batches of at most
``batch_size`` (one at a time when the model's batch dimension is fixed at 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.faces.geometry import align_crop, arcface_template, ffhq_template
from pipeline.models import binding, oom

ARCFACE_SIZE = 112
ARCFACE_MEAN = 127.5
ARCFACE_STD = 127.5
INSWAPPER_SIZE = 128
INSWAPPER_SCALE = 255.0
GFPGAN_SIZE = 512
GFPGAN_MEAN = 0.5
GFPGAN_STD = 0.5


def _batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _fixed_batch_of_one(session: Any) -> bool:
    return session.get_inputs()[0].shape[0] == 1


def _run_in_batches(
    session: Any, batch_size: int, count: int, run: Callable[[slice], np.ndarray]
) -> np.ndarray:
    size = 1 if _fixed_batch_of_one(session) else oom.capped(max(1, batch_size))
    return np.concatenate([run(part) for part in _batches(count, size)], axis=0)


def _bgr_to_blob(crops: np.ndarray, mean: float, std: float) -> np.ndarray:
    rgb = crops[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - mean) / std).transpose(0, 3, 1, 2))


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


class OneInOneOut:
    """A model of one input and one output run on crops in batches of ``batch_size``."""

    def __init__(self, name: str, session: Any, batch_size: int = 8) -> None:
        self.name = name
        self.session = session
        self.batch_size = batch_size
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name


class ArcFaceRecognizer(OneInOneOut):
    """ArcFace (w600k_r50 layout): 112x112 aligned crop -> 512-d embedding, L2-normalised."""

    size = ARCFACE_SIZE

    def align(self, image: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return align_crop(image, kps, arcface_template(self.size), self.size)

    def run(self, crops: np.ndarray) -> np.ndarray:
        """Raw embeddings [N, 512] of aligned crops."""
        blob = _bgr_to_blob(crops, ARCFACE_MEAN, ARCFACE_STD)
        return _run_in_batches(
            self.session,
            self.batch_size,
            len(crops),
            lambda part: self.session.run([self.output_name], {self.input_name: blob[part]})[0],
        )

    def embed(self, image: np.ndarray, kps_list: list[np.ndarray]) -> np.ndarray:
        """Normalised embeddings [N, 512] of the faces at ``kps_list`` in ``image``."""
        if not kps_list:
            return np.zeros((0, 512), dtype=np.float32)
        crops = np.stack([self.align(image, kps)[0] for kps in kps_list])
        return normalise(self.run(crops).astype(np.float32))


class InSwapper:
    """inswapper_128: 128x128 aligned target crop + source latent -> swapped crop.

    The latent is the source's normalised ArcFace embedding times the model's emap matrix,
    normalised again, as InsightFace computes it.
    """

    size = INSWAPPER_SIZE

    def __init__(self, name: str, session: Any, emap: np.ndarray, batch_size: int = 8) -> None:
        self.name = name
        self.session = session
        self.emap = emap
        self.batch_size = batch_size
        inputs = session.get_inputs()
        self.target_name, self.source_name = inputs[0].name, inputs[1].name
        self.output_name = session.get_outputs()[0].name

    def align(self, image: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return align_crop(image, kps, arcface_template(self.size), self.size)

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """[1, 512] latent for a (normalised) identity embedding."""
        latent = embedding.reshape(1, -1).astype(np.float32) @ self.emap
        return (latent / np.linalg.norm(latent)).astype(np.float32)

    def run(self, crops: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Swapped crops (N x 128 x 128 x 3 uint8 BGR) for aligned target crops and one latent."""
        blob = _bgr_to_blob(crops, 0.0, INSWAPPER_SCALE)

        def run_part(part: slice) -> np.ndarray:
            target = blob[part]
            source = np.repeat(latent, len(target), axis=0)
            return binding.run(
                self.session,
                [self.output_name],
                {self.target_name: target, self.source_name: source},
                self.name,
            )[0]

        predicted = _run_in_batches(self.session, self.batch_size, len(crops), run_part)
        rgb = np.clip(INSWAPPER_SCALE * predicted.transpose(0, 2, 3, 1), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb[..., ::-1])


class GfpganEnhancer(OneInOneOut):
    """GFPGAN 1.4: 512x512 crop aligned to the FFHQ template, values in [-1, 1], RGB."""

    size = GFPGAN_SIZE

    def align(self, image: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return align_crop(image, kps, ffhq_template(self.size), self.size)

    def run(self, crops: np.ndarray) -> np.ndarray:
        blob = _bgr_to_blob(crops, GFPGAN_MEAN * 255.0, GFPGAN_STD * 255.0)
        predicted = _run_in_batches(
            self.session,
            self.batch_size,
            len(crops),
            lambda part: binding.run(
                self.session, [self.output_name], {self.input_name: blob[part]}, self.name
            )[0],
        )
        rgb = (np.clip(predicted, -1, 1) + 1) / 2 * 255.0
        bgr = np.clip(rgb.transpose(0, 2, 3, 1) + 0.5, 0, 255).astype(np.uint8)[..., ::-1]
        return np.ascontiguousarray(bgr)
