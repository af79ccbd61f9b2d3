"""The mask options' names, as FaceFusion's users know them (no numpy: the options read them)."""

from __future__ import annotations

from typing import Literal, get_args

FaceMaskType = Literal["box", "occlusion", "area", "region"]
FaceMaskArea = Literal["upper-face", "lower-face", "mouth"]
FaceMaskRegion = Literal[
    "skin",
    "left-eyebrow",
    "right-eyebrow",
    "left-eye",
    "right-eye",
    "glasses",
    "nose",
    "mouth",
    "upper-lip",
    "lower-lip",
]
FACE_MASK_TYPES: tuple[str, ...] = get_args(FaceMaskType)
FACE_MASK_AREAS: tuple[str, ...] = get_args(FaceMaskArea)
FACE_MASK_REGIONS: tuple[str, ...] = get_args(FaceMaskRegion)

# the face parser's class of each region (CelebAMask-HQ's 19 classes, 0 the background)
REGION_CLASSES: dict[str, int] = {
    "skin": 1,
    "left-eyebrow": 2,
    "right-eyebrow": 3,
    "left-eye": 4,
    "right-eye": 5,
    "glasses": 6,
    "nose": 10,
    "mouth": 11,
    "upper-lip": 12,
    "lower-lip": 13,
}
# the 68-point landmarks (iBUG order) whose convex hull is each area, as FaceFusion draws them
AREA_LANDMARKS: dict[str, tuple[int, ...]] = {
    "upper-face": (0, 1, 2, 31, 32, 33, 34, 35, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17),
    "lower-face": (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31),
    "mouth": tuple(range(48, 68)),
}
