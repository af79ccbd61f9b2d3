"""Finding every face to anonymise: a miss shows a face the user wanted hidden.

The swapper's finder looks once, at the detector's usual score. The anonymiser's looks
harder (issue 27):

* border: the frame is padded before detection, so a face cut by the edge is not squeezed
  against the detector's own edge (where its anchors see no context);
* small faces: a second pass over overlapping tiles, each enlarged to the detector's size;
* profiles and poor views: a lower score than swapping needs (a false blur costs little);
* time: a face found in frame N covers frames N-k..N+k of the same batch where nothing was
  found at its place, so a one-frame miss is covered. Batches start at segment starts, so
  a resumed chunk carries exactly what an uninterrupted one did (byte identity holds);
* hysteresis: a weaker detection (down to ``WEAK_FACTOR`` of the score) counts where a face
  of full score was found at its place in another frame of the batch, so a face that hovers
  at the threshold for several frames (the demo's half face at the top edge, 0.28-0.30 for
  six frames) is not dropped in turn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from pipeline.faces.geometry import nms
from pipeline.faces.types import Face, FaceDetector

ANONYMIZE_SCORE = 0.3  # at most this: lower than the swapper's 0.5
BORDER_PAD = 0.25  # of the shorter side, on every edge
TILES = 2  # per side, overlapping
TILE_OVERLAP = 0.25  # of a tile's side
MERGE_IOU = 0.4
CARRY_FRAMES = 2
CARRY_IOU = 0.3
WEAK_FACTOR = 2 / 3  # a weak detection's floor, as a share of the confirming score


def _shifted(face: Face, dx: float, dy: float) -> Face:
    offset = np.array([dx, dy], np.float32)
    return replace(face, box=face.box + np.tile(offset, 2), kps=face.kps + offset)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    height = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = width * height
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class ThoroughFinder:
    """Every face it can find in a batch of frames: padded, tiled, confirmed across frames,
    carried across frames. ``detector`` finds down to the weak floor (``weak_floor(score)``);
    ``score`` confirms a face."""

    detector: FaceDetector
    score: float

    def find(self, images: list[np.ndarray]) -> list[list[Face]]:
        found = [self.detect(image) for image in images]
        return carry(confirmed(found, self.score))

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        pad = int(min(height, width) * BORDER_PAD)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        faces = [_shifted(face, -pad, -pad) for face in self.detector.detect(padded)]
        tile_h, tile_w = _tile_side(height), _tile_side(width)
        for top in _starts(height, tile_h):
            for left in _starts(width, tile_w):
                tile = image[top : top + tile_h, left : left + tile_w]
                faces += [_shifted(face, left, top) for face in self.detector.detect(tile)]
        return _merged(faces)


def _tile_side(side: int) -> int:
    return int(np.ceil(side / (TILES - (TILES - 1) * TILE_OVERLAP)))


def _starts(side: int, tile: int) -> list[int]:
    if TILES == 1 or tile >= side:
        return [0]
    step = (side - tile) / (TILES - 1)
    return [round(step * index) for index in range(TILES)]


def _merged(faces: list[Face]) -> list[Face]:
    """One face per place: the best-scored of the passes, its box grown to cover every box
    of the same face (the effect then hides all that any pass saw)."""
    if not faces:
        return []
    boxes = np.stack([face.box for face in faces]).astype(np.float32)
    scores = np.array([face.score for face in faces], np.float32)
    merged = []
    for kept in nms(boxes, scores, MERGE_IOU, pixel_offset=0.0):
        same = [box for box in boxes if _iou(box, boxes[kept]) >= MERGE_IOU]
        union = np.concatenate([np.min(same, axis=0)[:2], np.max(same, axis=0)[2:]]).astype(np.float32)
        merged.append(replace(faces[kept], box=union))
    return merged


def weak_floor(score: float) -> float:
    """The score the finder's detector runs at, for a confirming ``score``."""
    return score * WEAK_FACTOR


def confirmed(found: list[list[Face]], score: float) -> list[list[Face]]:
    """Each frame's faces of at least ``score``, and its weaker ones that overlap a face of
    at least ``score`` in some frame of the batch (the same face, seen better elsewhere)."""
    strong = [face for faces in found for face in faces if face.score >= score]
    return [
        [
            face
            for face in faces
            if face.score >= score or any(_iou(face.box, other.box) >= CARRY_IOU for other in strong)
        ]
        for faces in found
    ]


def carry(found: list[list[Face]], frames: int = CARRY_FRAMES) -> list[list[Face]]:
    """Each frame's faces plus those of the frames up to ``frames`` away that it lacks (no face
    of its own overlaps them): a face missed in one frame is covered by its neighbours'."""
    carried = []
    for index, faces in enumerate(found):
        result = list(faces)
        for distance in range(1, frames + 1):
            for neighbour in (index - distance, index + distance):
                if not 0 <= neighbour < len(found):
                    continue
                for face in found[neighbour]:
                    if all(_iou(face.box, own.box) < CARRY_IOU for own in result):
                        result.append(face)
        carried.append(result)
    return carried
