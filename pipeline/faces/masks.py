"""Face masks under the names FaceFusion users know: box, occlusion, area and region.

Every mask is made on the aligned crop, for all the faces of a batch of frames at once
(N x S x S, float32 in [0, 1]), and travels back into the frame with the crop (``paste_back``).
The chosen masks are combined as FaceFusion combines them: their elementwise minimum.

- ``box``: the crop's square, ``face_mask_padding`` percent cut from the top, right, bottom
  and left, feathered by a Gaussian of ``face_mask_blur`` (a fraction of the crop's side).
- ``occlusion``: an XSeg model (NHWC, BGR in [0, 1], 256x256) says where the face is visible.
- ``area``: polygons of ``face_mask_areas`` (upper-face, lower-face, mouth) over 68 landmarks;
  our detectors give five, so a mean 68-point face is placed on them (a similarity fit).
- ``region``: a BiSeNet face parser (NCHW, RGB with ImageNet's mean and deviation, 512x512,
  19 classes) keeps the pixels whose most likely class is one of ``face_mask_regions``.

The model and area masks get FaceFusion's soft edge: a Gaussian of ``SOFT_EDGE_SIGMA`` pixels,
then only the upper half of the ramp is kept (clipped to [0.5, 1], stretched to [0, 1]). At a
128-pixel crop that leaves the mouth area alone a faint mask (peak ~0.55), as in FaceFusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.faces.geometry import ARCFACE_TEMPLATE_112, similarity_matrix
from pipeline.faces.mask_names import AREA_LANDMARKS, FACE_MASK_AREAS, FACE_MASK_REGIONS, REGION_CLASSES
from pipeline.faces.models import OneInOneOut, _run_in_batches
from pipeline.models import binding

SOFT_EDGE_SIGMA = 5.0
SUBPIXEL_BITS = 4  # the area polygons are drawn to 1/16 of a pixel
SUBPIXEL = 1 << SUBPIXEL_BITS
COVERAGE_SCALE = 8  # area polygons: each pixel's coverage counted on an 8 x 8 grid
XSEG_SIZE = 256
BISENET_SIZE = 512
BISENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
BISENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# A mean face's 68 landmarks (iBUG order) in the 112x112 ArcFace crop, whose five points are
# ARCFACE_TEMPLATE_112: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67.
_JAW = [(18, 50), (19, 62), (21, 74), (24, 85), (28, 95), (34, 103), (41, 109), (48, 113), (56, 114)]
_BROW = [(25, 40), (31, 36), (38, 35), (45, 36), (51, 39)]
_NOSE = [(56, 52), (56, 58), (56, 64), (56, 70), (48, 76), (52, 77.5), (56, 78.5), (60, 77.5), (64, 76)]
_EYE = [(31.5, 52), (35, 49.5), (41, 49.5), (45, 52), (41, 54), (35, 54)]
_OUTER_LIP = [(41.5, 92.4), (46, 88), (51, 86), (56, 87), (61, 86), (66, 88), (70.7, 92.2)]
_OUTER_LIP += [(66, 97), (61, 99.5), (56, 100), (51, 99.5), (46, 97)]
_INNER_LIP = [(44, 92.3), (51, 90.5), (56, 91), (61, 90.5), (68, 92.2), (61, 94), (56, 94.5), (51, 94)]


def _mirror(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(112.0 - x, y) for x, y in points]


MEAN_FACE_68 = np.array(
    [
        *_JAW,
        *reversed(_mirror(_JAW[:-1])),
        *_BROW,
        *reversed(_mirror(_BROW)),
        *_NOSE,
        *_EYE,
        *_mirror([_EYE[3], _EYE[2], _EYE[1], _EYE[0], _EYE[5], _EYE[4]]),
        *_OUTER_LIP,
        *_INNER_LIP,
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class MaskSettings:
    """A job's mask options (``JobOptions``' face_mask_* fields)."""

    types: tuple[str, ...] = ("box",)
    blur: float = 0.1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # percent: top, right, bottom, left
    areas: tuple[str, ...] = FACE_MASK_AREAS
    regions: tuple[str, ...] = FACE_MASK_REGIONS


def mask_settings(options: Mapping[str, Any], default_blur: float) -> MaskSettings:
    """The mask options of ``options``; ``face_mask_blur`` absent or None is ``default_blur``
    (the processor's own feather, so that a job without mask options is pasted as before)."""
    blur = options.get("face_mask_blur")
    padding = [int(p) for p in options.get("face_mask_padding") or (0, 0, 0, 0)]
    return MaskSettings(
        types=tuple(options.get("face_mask_types") or ("box",)),
        blur=default_blur if blur is None else float(blur),
        padding=(padding[0], padding[1], padding[2], padding[3]),
        areas=tuple(options.get("face_mask_areas") or FACE_MASK_AREAS),
        regions=tuple(options.get("face_mask_regions") or FACE_MASK_REGIONS),
    )


def box_mask(size: int, blur: float, padding: Sequence[float] = (0, 0, 0, 0)) -> np.ndarray:
    """The crop's square (float32, 0..1): ``padding`` percent of the side cut from the top,
    right, bottom and left (at least the feather), then a Gaussian feather of ``blur`` (a
    fraction of the side)."""
    mask = np.zeros((size, size), dtype=np.float32)
    feather_px = max(1, int(size * blur))
    top, right, bottom, left = (max(feather_px, int(size * p / 100)) for p in padding)
    mask[top : size - bottom, left : size - right] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=feather_px * 0.5)


def soft_edge(mask: np.ndarray) -> np.ndarray:
    """FaceFusion's edge for model and area masks: blurred, the upper half of the ramp kept."""
    blurred = cv2.GaussianBlur(np.clip(mask, 0, 1).astype(np.float32), (0, 0), SOFT_EDGE_SIGMA)
    return (np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0


def _resized(crops: np.ndarray, side: int) -> np.ndarray:
    return np.stack([cv2.resize(crop, (side, side)) for crop in crops])


def _back_to(masks: np.ndarray, side: int) -> np.ndarray:
    """Model-sized masks resized to the crop's side, each with the soft edge."""
    return np.stack([soft_edge(cv2.resize(m.astype(np.float32), (side, side))) for m in masks])


class XsegOccluder(OneInOneOut):
    """XSeg (FaceFusion's xseg_1): crops resized to 256, BGR in [0, 1], NHWC -> where the face
    is visible (N x 256 x 256 x 1, higher = visible)."""

    size = XSEG_SIZE

    def run(self, crops: np.ndarray) -> np.ndarray:
        """Occlusion masks (N x S x S) of aligned crops (N x S x S x 3 uint8 BGR)."""
        blob = _resized(crops, self.size).astype(np.float32) / 255.0
        visible = _run_in_batches(
            self.session,
            self.batch_size,
            len(crops),
            lambda part: binding.run(
                self.session, [self.output_name], {self.input_name: blob[part]}, self.name
            )[0],
        )
        return _back_to(np.clip(visible.reshape(len(crops), self.size, self.size), 0, 1), crops.shape[1])


class BisenetParser(OneInOneOut):
    """BiSeNet (FaceFusion's bisenet_resnet_34): crops resized to 512, RGB normalised with
    ImageNet's mean and deviation, NCHW -> 19 class logits per pixel."""

    size = BISENET_SIZE

    def classes(self, crops: np.ndarray) -> np.ndarray:
        """The most likely class of each pixel (N x 512 x 512) of aligned crops."""
        rgb = _resized(crops, self.size)[..., ::-1].astype(np.float32) / 255.0
        blob = np.ascontiguousarray(((rgb - BISENET_MEAN) / BISENET_STD).transpose(0, 3, 1, 2))
        logits = _run_in_batches(
            self.session,
            self.batch_size,
            len(crops),
            lambda part: binding.run(
                self.session, [self.output_name], {self.input_name: blob[part]}, self.name
            )[0],
        )
        return np.argmax(logits, axis=1)

    def run(self, crops: np.ndarray, regions: Sequence[str]) -> np.ndarray:
        """Region masks (N x S x S) of aligned crops: the pixels parsed as one of ``regions``."""
        chosen = np.isin(self.classes(crops), [REGION_CLASSES[r] for r in regions])
        return _back_to(chosen.astype(np.float32), crops.shape[1])


def landmarks_68(crop_kps: np.ndarray) -> np.ndarray:
    """The mean face's 68 landmarks placed on a face's five (N x 5 x 2 -> N x 68 x 2)."""
    placed = []
    for kps in crop_kps:
        matrix = similarity_matrix(ARCFACE_TEMPLATE_112, kps)
        placed.append(MEAN_FACE_68 @ matrix[:, :2].T + matrix[:, 2])
    return np.stack(placed) if placed else np.zeros((0, 68, 2))


def area_masks(side: int, crop_kps: np.ndarray, areas: Sequence[str]) -> np.ndarray:
    """Area masks (N x side x side): the convex hull of the chosen areas' landmarks, per face,
    each pixel covered by its share of the hull (drawn at ``COVERAGE_SCALE`` times the side
    and averaged down), then FaceFusion's soft edge. A binary fill would decide a small area
    (the mouth alone, ~29 x 14 pixels at 128) by which pixel centres a polygon edge passes."""
    indices = [i for area in areas for i in AREA_LANDMARKS[area]]
    big = side * COVERAGE_SCALE
    masks = []
    for points in landmarks_68(crop_kps):
        canvas = np.zeros((big, big), dtype=np.uint8)
        # pixel centres sit at (i + 0.5) / scale - 0.5 in crop pixels
        scaled = (points[indices] + 0.5) * COVERAGE_SCALE - 0.5
        hull = cv2.convexHull(np.round(scaled * SUBPIXEL).astype(np.int32))
        cv2.fillConvexPoly(canvas, hull, 255, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        covered = cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        masks.append(soft_edge(covered))
    return np.stack(masks)


@dataclass
class FaceMasker:
    """The chosen masks of a processor's crops (``side`` pixels square), combined."""

    settings: MaskSettings
    side: int
    occluder: XsegOccluder | None = None
    parser: BisenetParser | None = None

    def __post_init__(self) -> None:
        self.box = box_mask(self.side, self.settings.blur, self.settings.padding)
        if "occlusion" in self.settings.types and self.occluder is None:
            raise ValueError("the occlusion mask needs an occluder model")
        if "region" in self.settings.types and self.parser is None:
            raise ValueError("the region mask needs a face parser model")

    def masks(self, crops: np.ndarray, crop_kps: np.ndarray) -> np.ndarray:
        """One mask per crop (N x side x side), the minimum of the chosen masks; ``crop_kps``
        are the faces' five landmarks in crop coordinates (N x 5 x 2)."""
        types = self.settings.types
        parts: list[np.ndarray] = []
        if "box" in types:
            parts.append(np.broadcast_to(self.box, (len(crops), self.side, self.side)))
        if "occlusion" in types and self.occluder is not None:
            parts.append(self.occluder.run(crops))
        if "area" in types:
            parts.append(area_masks(self.side, crop_kps, self.settings.areas))
        if "region" in types and self.parser is not None:
            parts.append(self.parser.run(crops, self.settings.regions))
        if len(parts) == 1:  # alone, a mask is used as it is made (the box: as pasted before)
            return parts[0]
        return np.clip(np.minimum.reduce(parts), 0.0, 1.0).astype(np.float32)
