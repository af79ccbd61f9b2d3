"""Which detected faces a processor works on: FaceFusion's selector modes, orders and filters.

``face_selector_mode`` many / one / reference, ``face_selector_order`` (left-right ...
worst-best), ``reference_face_distance``, age and gender filters; today's ``face_selector``
values are aliases of a mode and an order (``all``: many, as detected; ``largest``: one,
large-small; ``leftmost``: one, left-right; ``reference``: reference, as detected).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import InvalidMediaError, PipelineError
from pipeline.faces.attributes import GenderAgeModel
from pipeline.faces.batched_detection import detect_all
from pipeline.faces.models import ArcFaceRecognizer, normalise
from pipeline.faces.selector_names import SELECTOR_MODES, SELECTOR_ORDERS
from pipeline.faces.types import Face, FaceDetector
from pipeline.images import check_image
from pipeline.limits import MediaLimits
from pipeline.quality import iou

# face_selector: today's four values, kept as aliases of a mode and an order
SELECTOR_ALIASES = ("all", "largest", "leftmost", "reference")
DEFAULT_ORDER = "large-small"  # FaceFusion's, where face_selector_mode is given without an order
DEFAULT_REFERENCE_DISTANCE = 0.6
# alias -> (mode, order); order None: as the detector lists them (best score first)
ALIASES: dict[str, tuple[str, str | None]] = {
    "all": ("many", None),
    "largest": ("one", "large-small"),
    "leftmost": ("one", "left-right"),
    "reference": ("reference", None),
}
TRACK_IOU = 0.3  # reference mode: the least overlap with the face chosen a frame before

_ORDER_KEYS: dict[str, tuple[Callable[[Face], float], bool]] = {
    "left-right": (lambda f: float(f.box[0]), False),
    "right-left": (lambda f: float(f.box[0]), True),
    "top-bottom": (lambda f: float(f.box[1]), False),
    "bottom-top": (lambda f: float(f.box[1]), True),
    "small-large": (lambda f: f.area, False),
    "large-small": (lambda f: f.area, True),
    "best-worst": (lambda f: float(f.score), True),
    "worst-best": (lambda f: float(f.score), False),
}


@dataclass(frozen=True)
class Selection:
    """Which faces a processor works on: a mode, an order and filters (FaceFusion's meanings).

    ``many``: every face that passes the filters, in ``order``; ``one``: the first of them;
    ``reference``: those whose embedding is nearer the reference face than
    ``reference_distance`` (1 - cosine similarity, 0-2), in ``order``.
    """

    mode: str = "many"
    order: str | None = None  # None: the detector's order
    reference_distance: float = DEFAULT_REFERENCE_DISTANCE
    age_start: float | None = None
    age_end: float | None = None
    gender: str | None = None

    @property
    def filters(self) -> bool:
        """Whether a filter needs each face's gender and age (an attribute model)."""
        return self.age_start is not None or self.age_end is not None or self.gender is not None


def selection_of(options: Mapping[str, Any]) -> Selection:
    """The selection job options ask for: ``face_selector_mode`` and ``face_selector_order``
    where given, else the ``face_selector`` alias's."""
    alias = str(options.get("face_selector") or "all")
    if alias not in ALIASES:
        raise PipelineError(f"unknown face_selector {alias!r}; choose from {', '.join(SELECTOR_ALIASES)}")
    mode, order = ALIASES[alias]
    if options.get("face_selector_mode") is not None:
        mode, order = str(options["face_selector_mode"]), DEFAULT_ORDER
    if options.get("face_selector_order") is not None:
        order = str(options["face_selector_order"])
    if mode not in SELECTOR_MODES:
        raise PipelineError(f"unknown face_selector_mode {mode!r}; choose from {', '.join(SELECTOR_MODES)}")
    if order is not None and order not in _ORDER_KEYS:
        raise PipelineError(
            f"unknown face_selector_order {order!r}; choose from {', '.join(SELECTOR_ORDERS)}"
        )
    distance = options.get("reference_face_distance", options.get("reference_distance"))
    return Selection(
        mode=mode,
        order=order,
        reference_distance=DEFAULT_REFERENCE_DISTANCE if distance is None else float(distance),
        age_start=_number(options.get("face_selector_age_start")),
        age_end=_number(options.get("face_selector_age_end")),
        gender=options.get("face_selector_gender"),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _as_selection(selection: Selection | str, max_distance: float) -> Selection:
    if isinstance(selection, Selection):
        return selection
    if selection in ALIASES:
        mode, order = ALIASES[selection]
        return Selection(mode, order, max_distance)
    if selection in SELECTOR_MODES:
        return Selection(selection, DEFAULT_ORDER, max_distance)
    known = ", ".join((*SELECTOR_MODES, *SELECTOR_ALIASES))
    raise PipelineError(f"unknown face_selector {selection!r}; choose from {known}")


def cosine_distance(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of normalised embeddings [N, D] to one [D]: 0 same, 2 opposite."""
    return 1.0 - embeddings @ reference.reshape(-1)


def sort_faces(faces: list[Face], order: str | None) -> list[Face]:
    """``faces`` in ``order`` (stable: ties keep the detector's order); None: as they are."""
    if order is None:
        return list(faces)
    key, reverse = _ORDER_KEYS[order]
    return sorted(faces, key=key, reverse=reverse)


def filter_faces(faces: list[Face], selection: Selection) -> list[Face]:
    """The faces whose gender and age pass the selection's filters."""
    if not selection.filters:
        return list(faces)
    if any(face.gender is None or face.age is None for face in faces):
        raise PipelineError(
            "the face_selector age and gender filters need an attribute model (face_attribute_model)"
        )
    low = -np.inf if selection.age_start is None else selection.age_start
    high = np.inf if selection.age_end is None else selection.age_end
    return [
        face
        for face in faces
        if low <= float(face.age) <= high  # type: ignore[arg-type]
        and (selection.gender is None or face.gender == selection.gender)
    ]


def _near_reference(faces: list[Face], reference: np.ndarray | None, max_distance: float) -> list[Face]:
    if reference is None:
        raise PipelineError("face_selector reference needs a reference face")
    embedded = [f for f in faces if f.embedding is not None]
    if not embedded:
        return []
    distances = cosine_distance(np.stack([f.embedding for f in embedded]), reference)  # type: ignore[misc]
    return [f for f, d in zip(embedded, distances, strict=True) if d < max_distance]


def _tracked(candidates: list[Face], previous: list[np.ndarray]) -> list[Face]:
    """For each face chosen a frame before, the candidate that overlaps it most (at least
    TRACK_IOU), each candidate once, in the candidates' order."""
    kept: set[int] = set()
    for box in previous:
        overlaps = [iou(box, face.box) for face in candidates]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best >= 0 and overlaps[best] >= TRACK_IOU:
            kept.add(best)
    return [face for position, face in enumerate(candidates) if position in kept]


def select_faces(
    faces: list[Face],
    selection: Selection | str,
    reference: np.ndarray | None = None,
    max_distance: float = DEFAULT_REFERENCE_DISTANCE,
    previous: list[np.ndarray] | None = None,
) -> list[Face]:
    """The faces ``selection`` keeps (a Selection, a mode or a face_selector alias).

    Reference mode needs each face's embedding; ``previous`` holds the boxes it chose in the
    frame before: where a candidate overlaps one of them, only those tracked faces are kept,
    so a similar neighbour that comes within the distance does not take the chosen face's place.
    """
    chosen = _as_selection(selection, max_distance)
    if not faces:
        return []
    candidates = filter_faces(faces, chosen)
    if chosen.mode == "reference":
        candidates = _near_reference(candidates, reference, chosen.reference_distance)
        candidates = _tracked(candidates, previous or []) or candidates
    ordered = sort_faces(candidates, chosen.order)
    return ordered[:1] if chosen.mode == "one" else ordered


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
    """Detect, then select, faces in a batch of images; embeddings (reference mode) and
    attributes (age and gender filters) run batched.

    Reference mode tracks the chosen faces from frame to frame within one batch (``find``
    call). Batches start at segment starts, so a resumed chunk chooses exactly what an
    uninterrupted one did; the first frame of a batch chooses from the distance alone.
    """

    detector: FaceDetector
    selection: Selection = field(default_factory=Selection)
    recognizer: ArcFaceRecognizer | None = None
    reference: np.ndarray | None = None
    attributes: GenderAgeModel | None = None

    @property
    def mode(self) -> str:
        return self.selection.mode

    def find(self, images: list[np.ndarray]) -> list[list[Face]]:
        detected = detect_all(self.detector, images, getattr(self.detector, "batch_session", None))
        if self.selection.mode == "reference" and self.recognizer is not None:
            self._embed(images, detected)
        if self.selection.filters and self.attributes is not None:
            for image, faces in zip(images, detected, strict=True):
                self.attributes.estimate(image, faces)
        found: list[list[Face]] = []
        previous: list[np.ndarray] = []
        for faces in detected:
            chosen = select_faces(faces, self.selection, self.reference, previous=previous)
            found.append(chosen)
            if chosen:
                previous = [face.box for face in chosen]
        return found

    def _embed(self, images: list[np.ndarray], detected: list[list[Face]]) -> None:
        assert self.recognizer is not None
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
