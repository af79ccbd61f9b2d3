"""The quality gate's face models: what it measures on one sampled frame (``pipeline.quality``
holds the figures and the frames' sampling).

For a swap (or an enhancement) the gate finds the faces the job's own detector and selector
choose in the input frame, finds the faces in the output frame with the same detector, and
embeds each output face that sits where a chosen one was. For the anonymiser it is the
reverse: a second, different detector (YuNet for an SCRFD job, SCRFD-500M for a YuNet job)
looks for any face left in the output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.faces.detectors import YunetDetector
from pipeline.faces.loading import load_attributes, load_detector, load_recognizer
from pipeline.faces.models import ArcFaceRecognizer
from pipeline.faces.selection import FaceFinder, selection_of
from pipeline.faces.types import Face, FaceDetector
from pipeline.models.registry import GATE_DETECTOR
from pipeline.processors import Assets
from pipeline.quality import MATCH_IOU, Figures, iou, squared_error_outside
from pipeline.runtime import Runtime

# the processors whose output the gate measures (the debugger draws on purpose)
MEASURED = ("face_swapper", "face_enhancer", "face_anonymizer")
# the anonymiser's gate checks with another family of detector than the job's
CHECK_DETECTOR = GATE_DETECTOR
CHECK_SCORE = 0.7  # YuNet at 0.5 calls the glasses on the demo's table faces (0.51-0.63)
SOURCE_ASSET = "face_swapper.source_embedding"
REFERENCE_SUFFIX = ".reference_embedding"


@dataclass
class QualityGate:
    finder: FaceFinder  # the job's detector and selector, on the input frame
    detector: FaceDetector  # on the output frame
    recognizer: ArcFaceRecognizer | None = None
    source: np.ndarray | None = None  # the swap's source identity
    reverse: bool = False  # the anonymiser's: a face found in the output fails

    def measure(self, before: np.ndarray, after: np.ndarray) -> Figures:
        """The figures of one sampled frame: ``before`` the input, ``after`` as decoded back."""
        chosen = self.finder.find([before])[0]
        found = self.detector.detect(after)
        error, values = squared_error_outside(before, after, [face.box for face in chosen])
        figures = Figures(
            samples=1, with_face=int(bool(found)), squared_error=error, values=values, reverse=self.reverse
        )
        if self.recognizer is not None and self.source is not None and not self.reverse:
            swapped = _matches(chosen, found)
            if swapped:
                embeddings = self.recognizer.embed(after, [face.kps for face in swapped])
                figures.similarities = [float(s) for s in embeddings @ self.source.reshape(-1)]
        return figures


def _matches(chosen: list[Face], found: list[Face]) -> list[Face]:
    """The output face at the place of each chosen input face (best overlap, at least MATCH_IOU)."""
    matched = []
    for face in chosen:
        best = max(found, key=lambda other: iou(face.box, other.box), default=None)
        if best is not None and iou(face.box, best.box) >= MATCH_IOU:
            matched.append(best)
    return matched


def build_gate(
    names: Sequence[str], options: Mapping[str, Any], assets: Assets, runtime: Runtime
) -> QualityGate | None:
    """The gate for a chain of processors (None: nothing it measures, e.g. ``none``)."""
    if not any(name in MEASURED for name in names):
        return None
    detector = load_detector(options, runtime)
    finder = FaceFinder(detector, selection_of(options))
    if finder.selection.filters:
        finder.attributes = load_attributes(options, runtime)
    reference = next((value for key, value in assets.items() if key.endswith(REFERENCE_SUFFIX)), None)
    if finder.mode == "reference" and reference is not None:
        finder.recognizer = load_recognizer(options, runtime)
        finder.reference = np.asarray(reference, dtype=np.float32)
    if "face_anonymizer" in names:
        return QualityGate(finder, check_detector(options, runtime), reverse=True)
    gate = QualityGate(finder, detector)
    if "face_swapper" in names and SOURCE_ASSET in assets:
        gate.recognizer = load_recognizer(options, runtime)
        gate.source = np.asarray(assets[SOURCE_ASSET], dtype=np.float32)
    return gate


def check_detector(options: Mapping[str, Any], runtime: Runtime) -> FaceDetector:
    """A detector of the other family than the job's, at the usual score."""
    job = load_detector(options, runtime)
    kind = "yunet" if isinstance(job, YunetDetector) else "scrfd"
    return load_detector(
        {**options, "face_detector": CHECK_DETECTOR[kind], "detector_score": CHECK_SCORE}, runtime
    )
