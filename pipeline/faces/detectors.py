"""Face detectors: SCRFD (InsightFace det_10g / det_500m) and YuNet (OpenCV Zoo)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import ModelError
from pipeline.faces.geometry import letterbox, nms
from pipeline.faces.types import Face

STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2  # anchors per location
SCRFD_MEAN = 127.5
SCRFD_STD = 128.0
KEYPOINTS = 5


@dataclass(frozen=True)
class DetectorSettings:
    score: float = 0.5
    nms: float = 0.4
    size: int = 640


def _anchor_centers(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    grid = np.stack([xs, ys], axis=-1).astype(np.float32)
    centers = (grid * stride).reshape(-1, 2)
    return np.repeat(centers, anchors, axis=0) if anchors > 1 else centers


def _to_faces(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, keep: list[int]) -> list[Face]:
    return [
        Face(box=boxes[i].astype(np.float32), score=float(scores[i]), kps=kps[i].astype(np.float32))
        for i in keep
    ]


class ScrfdDetector:
    """SCRFD in InsightFace's export: 9 outputs, scores/boxes/keypoints per stride, 2 anchors."""

    def __init__(self, name: str, session: Any, settings: DetectorSettings) -> None:
        self.name = name
        self.session = session
        self.settings = settings
        self.input_name = session.get_inputs()[0].name
        self.batch_session: Any = None  # runs many frames at once (batched_detection.py)
        outputs = session.get_outputs()
        if len(outputs) != 3 * len(STRIDES):
            raise ModelError(
                f"model {name} has {len(outputs)} outputs; an SCRFD detector with keypoints has "
                f"{3 * len(STRIDES)} (scores, boxes, keypoints for strides {STRIDES})"
            )
        self.output_names = [o.name for o in outputs]
        self.batched = len(outputs[0].shape) == 3
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    def _centers_for(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._centers:
            self._centers[key] = _anchor_centers(height, width, stride, SCRFD_ANCHORS)
        return self._centers[key]

    def blob(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """[1,3,S,S] input for ``image`` and the letterbox scale."""
        size = self.settings.size
        canvas, scale = letterbox(image, size, size)
        rgb = canvas[:, :, ::-1].astype(np.float32)
        return np.ascontiguousarray(((rgb - SCRFD_MEAN) / SCRFD_STD).transpose(2, 0, 1)[None]), scale

    def detect(self, image: np.ndarray) -> list[Face]:
        blob, scale = self.blob(image)
        return self.decode(self.session.run(self.output_names, {self.input_name: blob}), scale)

    def split(self, outputs: list[np.ndarray], count: int) -> list[list[np.ndarray]]:
        """Each image's outputs, as the batch-1 graph gives them, from a batch of ``count``.
        InsightFace's export flattens [N,C,H,W] through [H,W,N,C]: location-major."""
        if self.batched:
            return [[o[i : i + 1] for o in outputs] for i in range(count)]
        size, strides = self.settings.size, STRIDES * 3
        cells = [(size // stride) ** 2 for stride in strides]
        return [
            [
                o.reshape(c, count, -1)[:, i].reshape(-1, o.shape[-1])
                for o, c in zip(outputs, cells, strict=True)
            ]
            for i in range(count)
        ]

    def decode(self, outputs: list[np.ndarray], scale: float) -> list[Face]:
        size = self.settings.size
        if self.batched:
            outputs = [o[0] for o in outputs]
        all_scores, all_boxes, all_kps = [], [], []
        count = len(STRIDES)
        for index, stride in enumerate(STRIDES):
            scores = outputs[index].reshape(-1)
            distances = outputs[index + count] * stride
            kps_distances = outputs[index + 2 * count] * stride
            centers = self._centers_for(size // stride, size // stride, stride)
            chosen = np.where(scores >= self.settings.score)[0]
            c = centers[chosen]
            d = distances[chosen]
            all_scores.append(scores[chosen])
            all_boxes.append(
                np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], -1)
            )
            k = kps_distances[chosen].reshape(-1, KEYPOINTS, 2)
            all_kps.append(c[:, None, :] + k)
        scores = np.concatenate(all_scores)
        order = scores.argsort()[::-1]
        scores = scores[order]
        boxes = (np.concatenate(all_boxes) / scale)[order].astype(np.float32)
        kps = (np.concatenate(all_kps) / scale)[order]
        keep = nms(boxes, scores, self.settings.nms, pixel_offset=1.0)
        return _to_faces(boxes, scores, kps, keep)


class YunetDetector:
    """YuNet (OpenCV Zoo): cls/obj/bbox/kps outputs per stride, one anchor-free point per cell."""

    OUTPUT_GROUPS = ("cls", "obj", "bbox", "kps")

    def __init__(self, name: str, session: Any, settings: DetectorSettings) -> None:
        self.name = name
        self.session = session
        self.settings = settings
        self.input_name = session.get_inputs()[0].name
        self.batch_session: Any = None  # runs many frames at once (batched_detection.py)
        names = {o.name for o in session.get_outputs()}
        wanted = [f"{group}_{stride}" for group in self.OUTPUT_GROUPS for stride in STRIDES]
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ModelError(f"model {name} lacks the YuNet outputs {', '.join(missing)}")
        self.output_names = wanted

    def blob(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        size = self.settings.size
        canvas, scale = letterbox(image, size, size)
        return np.ascontiguousarray(canvas.astype(np.float32).transpose(2, 0, 1)[None]), scale  # BGR, 0..255

    def detect(self, image: np.ndarray) -> list[Face]:
        blob, scale = self.blob(image)
        return self.decode(self.session.run(self.output_names, {self.input_name: blob}), scale)

    def split(self, outputs: list[np.ndarray], count: int) -> list[list[np.ndarray]]:
        """Each image's outputs from a batch of ``count``: OpenCV Zoo's export keeps a leading 1
        and concatenates the images' anchors along the next axis."""
        if outputs and outputs[0].shape[0] == count:
            return [[o[i : i + 1] for o in outputs] for i in range(count)]
        return [[o.reshape(1, count, -1, o.shape[-1])[:, i] for o in outputs] for i in range(count)]

    def decode(self, raw: list[np.ndarray], scale: float) -> list[Face]:
        size = self.settings.size
        outputs = dict(zip(self.output_names, raw, strict=True))
        all_scores, all_boxes, all_kps = [], [], []
        for stride in STRIDES:
            cols = size // stride
            cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
            scores = np.sqrt(cls * obj)
            chosen = np.where(scores >= self.settings.score)[0]
            cells = np.stack([chosen % cols, chosen // cols], axis=-1).astype(np.float32)
            bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[chosen]
            centers = (cells + bbox[:, :2]) * stride
            sizes = np.exp(bbox[:, 2:]) * stride
            all_boxes.append(np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=-1))
            kps = outputs[f"kps_{stride}"].reshape(-1, KEYPOINTS, 2)[chosen]
            all_kps.append((kps + cells[:, None, :]) * stride)
            all_scores.append(scores[chosen])
        scores = np.concatenate(all_scores)
        boxes = (np.concatenate(all_boxes) / scale).astype(np.float32)
        kps = np.concatenate(all_kps) / scale
        keep = nms(boxes, scores, self.settings.nms, pixel_offset=0.0)
        return _to_faces(boxes, scores, kps, keep)


DETECTOR_CLASSES: dict[str, type[ScrfdDetector] | type[YunetDetector]] = {
    "scrfd": ScrfdDetector,
    "yunet": YunetDetector,
}
