"""The face processors of the chain: face_swapper, face_enhancer, face_anonymizer, face_debugger.

Options come as the plain dict of ``JobOptions.processor_options()``. Every model is
resolved, verified and opened in ``prepare`` (once per job) and ``create`` (once per worker
and job), so a missing or wrong model fails before any frame is processed. The faces of a
batch of frames go through each model together, in batches of ``face_batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.faces.anonymizer import ANONYMIZE_SCORE, ThoroughFinder, weak_floor
from pipeline.faces.effects import anonymize, draw_faces
from pipeline.faces.geometry import paste_back
from pipeline.faces.loading import (
    load_attributes,
    load_detector,
    load_enhancer,
    load_masker,
    load_occluder,
    load_parser,
    load_recognizer,
    load_swapper,
)
from pipeline.faces.masks import FaceMasker, mask_settings
from pipeline.faces.models import GfpganEnhancer, InSwapper
from pipeline.faces.selection import FaceFinder, average_identity, identity_of, selection_of
from pipeline.faces.types import Face
from pipeline.frames import Frame
from pipeline.processors import Assets, JobInputs, ProcessorFactory
from pipeline.runtime import Runtime

# each processor's box feather when the job gives no face_mask_blur (the masks pasted before
# the mask options existed)
SWAP_MASK_FEATHER = 0.1
ENHANCE_MASK_FEATHER = 0.15
REFERENCE_ASSET = "reference_embedding"
SOURCE_ASSET = "source_embedding"


# ---------------------------------------------------------------- shared per-job preparation


def _reference_assets(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    """The reference face's embedding when the selector needs one."""
    selection = selection_of(options)
    if selection.filters:  # a missing attribute model shows now, not in the first chunk
        load_attributes(options, runtime)
    if selection.mode != "reference":
        return {}
    if inputs.reference is None:
        raise PipelineError("face_selector reference needs a reference image (--reference)")
    detector, recognizer = load_detector(options, runtime), load_recognizer(options, runtime)
    return {REFERENCE_ASSET: identity_of(inputs.reference, "reference", detector, recognizer, inputs.limits)}


def _finder(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceFinder:
    finder = FaceFinder(load_detector(options, runtime), selection_of(options))
    if finder.selection.filters:
        finder.attributes = load_attributes(options, runtime)
    if finder.mode == "reference":
        if REFERENCE_ASSET not in assets:
            raise PipelineError("face_selector reference: the job has no reference face (was it prepared?)")
        finder.recognizer = load_recognizer(options, runtime)
        finder.reference = np.asarray(assets[REFERENCE_ASSET], dtype=np.float32)
    return finder


@dataclass
class AlignedFaces:
    """Every selected face of a batch of frames, aligned: where it goes back and its crop."""

    places: list[tuple[int, np.ndarray]]  # (frame position, 2x3 matrix into the crop)
    crops: np.ndarray  # N x S x S x 3 uint8 BGR
    kps: np.ndarray  # N x 5 x 2: the five landmarks in crop coordinates


def _aligned_faces(frames: list[Frame], found: list[list[Face]], align: Any) -> AlignedFaces | None:
    places, crops, kps = [], [], []
    for position, (frame, faces) in enumerate(zip(frames, found, strict=True)):
        for face in faces:
            crop, matrix = align(frame.image, face.kps)
            places.append((position, matrix))
            crops.append(crop)
            kps.append(np.asarray(face.kps, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2])
    if not crops:
        return None
    return AlignedFaces(places, np.stack(crops), np.stack(kps))


def _paste_all(
    frames: list[Frame], places: list[tuple[int, np.ndarray]], results: np.ndarray, masks: np.ndarray
) -> dict[int, np.ndarray]:
    """Each touched frame's new image, the faces pasted back one after another, each through
    its own mask."""
    images: dict[int, np.ndarray] = {}
    for (position, matrix), crop, mask in zip(places, results, masks, strict=True):
        base = images.get(position, frames[position].image)
        images[position] = paste_back(base, crop, matrix, mask)
    return images


def _prepare_masks(options: Mapping[str, Any], runtime: Runtime) -> None:
    """The mask models the job's mask types need, loaded now so that a problem shows now."""
    settings = mask_settings(options, SWAP_MASK_FEATHER)
    if "occlusion" in settings.types:
        load_occluder(options, runtime)
    if "region" in settings.types:
        load_parser(options, runtime)


# ---------------------------------------------------------------- face_swapper


def prepare_swapper(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    if not inputs.sources:
        raise PipelineError("face_swapper needs at least one source face image (--source)")
    load_swapper(options, runtime)  # a model problem shows now, not in the first chunk
    _prepare_masks(options, runtime)
    detector, recognizer = load_detector(options, runtime), load_recognizer(options, runtime)
    identities = [identity_of(path, "source", detector, recognizer, inputs.limits) for path in inputs.sources]
    return {SOURCE_ASSET: average_identity(identities), **_reference_assets(options, inputs, runtime)}


@dataclass
class FaceSwapper:
    finder: FaceFinder
    swapper: InSwapper
    latent: np.ndarray
    masker: FaceMasker
    name: str = "face_swapper"

    def process(self, frames: list[Frame]) -> list[Frame]:
        found = self.finder.find([frame.image for frame in frames])
        faces = _aligned_faces(frames, found, self.swapper.align)
        if faces is None:
            return frames
        masks = self.masker.masks(faces.crops, faces.kps)  # of the target faces, as FaceFusion
        swapped = self.swapper.run(faces.crops, self.latent)
        for position, image in _paste_all(frames, faces.places, swapped, masks).items():
            frames[position].image = image
        return frames


def create_swapper(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceSwapper:
    if SOURCE_ASSET not in assets:
        raise PipelineError("face_swapper: the job has no source identity (was it prepared?)")
    swapper = load_swapper(options, runtime)
    finder = _finder(options, assets, runtime)
    latent = swapper.latent(np.asarray(assets[SOURCE_ASSET], dtype=np.float32))
    return FaceSwapper(
        finder, swapper, latent, load_masker(options, runtime, swapper.size, SWAP_MASK_FEATHER)
    )


# ---------------------------------------------------------------- face_enhancer


def prepare_enhancer(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    load_enhancer(options, runtime)
    load_detector(options, runtime)
    _prepare_masks(options, runtime)
    return _reference_assets(options, inputs, runtime)


@dataclass
class FaceEnhancer:
    finder: FaceFinder
    enhancer: GfpganEnhancer
    blend: float
    masker: FaceMasker
    name: str = "face_enhancer"

    def process(self, frames: list[Frame]) -> list[Frame]:
        found = self.finder.find([frame.image for frame in frames])
        faces = _aligned_faces(frames, found, self.enhancer.align)
        if faces is None:
            return frames
        masks = self.masker.masks(faces.crops, faces.kps) * self.blend
        enhanced = self.enhancer.run(faces.crops)
        for position, image in _paste_all(frames, faces.places, enhanced, masks).items():
            frames[position].image = image
        return frames


def create_enhancer(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceEnhancer:
    blend = float(options.get("enhancer_blend", 0.8))
    enhancer = load_enhancer(options, runtime)
    masker = load_masker(options, runtime, enhancer.size, ENHANCE_MASK_FEATHER)
    return FaceEnhancer(_finder(options, assets, runtime), enhancer, blend, masker)


# ---------------------------------------------------------------- face_anonymizer, face_debugger


def prepare_detector_only(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    load_detector(options, runtime)
    return _reference_assets(options, inputs, runtime)


@dataclass
class FaceEffect:
    """Finds the selected faces in each frame and redraws them with ``effect``."""

    finder: FaceFinder | ThoroughFinder
    effect: Callable[[np.ndarray, list[Face]], np.ndarray]
    name: str

    def process(self, frames: list[Frame]) -> list[Frame]:
        found = self.finder.find([frame.image for frame in frames])
        for frame, faces in zip(frames, found, strict=True):
            if faces:
                frame.image = self.effect(frame.image, faces)
        return frames


def create_anonymizer(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceEffect:
    mode = str(options.get("anonymizer_mode", "blur"))
    if mode not in ("blur", "pixelate"):
        raise PipelineError(f"unknown anonymizer_mode {mode!r}; choose blur or pixelate")
    chosen = _finder(options, assets, runtime)
    finder: FaceFinder | ThoroughFinder = chosen
    if chosen.mode == "many" and not chosen.selection.filters:
        # every face: looked for harder (border, small, profile, time)
        score = min(float(options.get("detector_score", 0.5)), ANONYMIZE_SCORE)
        detector = load_detector({**options, "detector_score": weak_floor(score)}, runtime)
        finder = ThoroughFinder(detector, score)
    return FaceEffect(finder, lambda image, faces: anonymize(image, faces, mode), "face_anonymizer")


def create_debugger(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceEffect:
    return FaceEffect(_finder(options, assets, runtime), draw_faces, "face_debugger")


FACE_SWAPPER = ProcessorFactory("face_swapper", create=create_swapper, prepare=prepare_swapper)
FACE_ENHANCER = ProcessorFactory("face_enhancer", create=create_enhancer, prepare=prepare_enhancer)
FACE_ANONYMIZER = ProcessorFactory("face_anonymizer", create=create_anonymizer, prepare=prepare_detector_only)
FACE_DEBUGGER = ProcessorFactory("face_debugger", create=create_debugger, prepare=prepare_detector_only)
