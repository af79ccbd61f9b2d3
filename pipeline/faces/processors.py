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
from pipeline.faces.anonymizer import ANONYMIZE_SCORE, ThoroughFinder
from pipeline.faces.effects import anonymize, draw_faces
from pipeline.faces.geometry import box_mask, paste_back
from pipeline.faces.loading import (
    load_attributes,
    load_detector,
    load_enhancer,
    load_recognizer,
    load_swapper,
)
from pipeline.faces.models import GfpganEnhancer, InSwapper
from pipeline.faces.selection import FaceFinder, average_identity, identity_of, selection_of
from pipeline.faces.types import Face
from pipeline.frames import Frame
from pipeline.processors import Assets, JobInputs, ProcessorFactory
from pipeline.runtime import Runtime

SWAP_MASK_PADDING = 0.0
SWAP_MASK_FEATHER = 0.1
ENHANCE_MASK_PADDING = 0.0
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


def _aligned_faces(
    frames: list[Frame], found: list[list[Face]], align: Any
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray | None]:
    """(frame position, matrix) of every face, and all their aligned crops stacked."""
    places, crops = [], []
    for position, (frame, faces) in enumerate(zip(frames, found, strict=True)):
        for face in faces:
            crop, matrix = align(frame.image, face.kps)
            places.append((position, matrix))
            crops.append(crop)
    return places, (np.stack(crops) if crops else None)


def _paste_all(
    frames: list[Frame], places: list[tuple[int, np.ndarray]], results: np.ndarray, mask: np.ndarray
) -> dict[int, np.ndarray]:
    """Each touched frame's new image, the faces pasted back one after another."""
    images: dict[int, np.ndarray] = {}
    for (position, matrix), crop in zip(places, results, strict=True):
        base = images.get(position, frames[position].image)
        images[position] = paste_back(base, crop, matrix, mask)
    return images


# ---------------------------------------------------------------- face_swapper


def prepare_swapper(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    if not inputs.sources:
        raise PipelineError("face_swapper needs at least one source face image (--source)")
    load_swapper(options, runtime)  # a model problem shows now, not in the first chunk
    detector, recognizer = load_detector(options, runtime), load_recognizer(options, runtime)
    identities = [identity_of(path, "source", detector, recognizer, inputs.limits) for path in inputs.sources]
    return {SOURCE_ASSET: average_identity(identities), **_reference_assets(options, inputs, runtime)}


@dataclass
class FaceSwapper:
    finder: FaceFinder
    swapper: InSwapper
    latent: np.ndarray
    name: str = "face_swapper"

    def __post_init__(self) -> None:
        self.mask = box_mask(self.swapper.size, SWAP_MASK_PADDING, SWAP_MASK_FEATHER)

    def process(self, frames: list[Frame]) -> list[Frame]:
        found = self.finder.find([frame.image for frame in frames])
        places, crops = _aligned_faces(frames, found, self.swapper.align)
        if crops is None:
            return frames
        swapped = self.swapper.run(crops, self.latent)
        for position, image in _paste_all(frames, places, swapped, self.mask).items():
            frames[position].image = image
        return frames


def create_swapper(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceSwapper:
    if SOURCE_ASSET not in assets:
        raise PipelineError("face_swapper: the job has no source identity (was it prepared?)")
    swapper = load_swapper(options, runtime)
    finder = _finder(options, assets, runtime)
    return FaceSwapper(finder, swapper, swapper.latent(np.asarray(assets[SOURCE_ASSET], dtype=np.float32)))


# ---------------------------------------------------------------- face_enhancer


def prepare_enhancer(options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime) -> Assets:
    load_enhancer(options, runtime)
    load_detector(options, runtime)
    return _reference_assets(options, inputs, runtime)


@dataclass
class FaceEnhancer:
    finder: FaceFinder
    enhancer: GfpganEnhancer
    blend: float
    name: str = "face_enhancer"

    def __post_init__(self) -> None:
        self.mask = box_mask(self.enhancer.size, ENHANCE_MASK_PADDING, ENHANCE_MASK_FEATHER) * self.blend

    def process(self, frames: list[Frame]) -> list[Frame]:
        found = self.finder.find([frame.image for frame in frames])
        places, crops = _aligned_faces(frames, found, self.enhancer.align)
        if crops is None:
            return frames
        enhanced = self.enhancer.run(crops)
        for position, image in _paste_all(frames, places, enhanced, self.mask).items():
            frames[position].image = image
        return frames


def create_enhancer(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceEnhancer:
    blend = float(options.get("enhancer_blend", 0.8))
    return FaceEnhancer(_finder(options, assets, runtime), load_enhancer(options, runtime), blend)


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
        finder = ThoroughFinder(load_detector({**options, "detector_score": score}, runtime))
    return FaceEffect(finder, lambda image, faces: anonymize(image, faces, mode), "face_anonymizer")


def create_debugger(options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> FaceEffect:
    return FaceEffect(_finder(options, assets, runtime), draw_faces, "face_debugger")


FACE_SWAPPER = ProcessorFactory("face_swapper", create=create_swapper, prepare=prepare_swapper)
FACE_ENHANCER = ProcessorFactory("face_enhancer", create=create_enhancer, prepare=prepare_enhancer)
FACE_ANONYMIZER = ProcessorFactory("face_anonymizer", create=create_anonymizer, prepare=prepare_detector_only)
FACE_DEBUGGER = ProcessorFactory("face_debugger", create=create_debugger, prepare=prepare_detector_only)
