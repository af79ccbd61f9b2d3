"""Pure geometry: similarity alignment (returning the matrix for paste-back), paste-back, NMS."""

from __future__ import annotations

import cv2
import numpy as np

# InsightFace's 5-point ArcFace template for a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
ARCFACE_BASE = 112
INSWAPPER_BASE = 128
INSWAPPER_X_SHIFT = 8.0  # the 112 template centred in a 128 crop
# FFHQ 5-point template (GFPGAN's alignment), as fractions of the crop size.
FFHQ_TEMPLATE = np.array(
    [
        [0.37691676, 0.46864664],
        [0.62285697, 0.46912813],
        [0.50123859, 0.61331904],
        [0.39308822, 0.72541100],
        [0.61150205, 0.72490465],
    ],
    dtype=np.float32,
)


def arcface_template(size: int) -> np.ndarray:
    """InsightFace's template scaled to ``size`` (multiples of 112, or of 128 with the x shift)."""
    if size % ARCFACE_BASE == 0:
        return ARCFACE_TEMPLATE_112 * (size / ARCFACE_BASE)
    if size % INSWAPPER_BASE == 0:
        ratio = size / INSWAPPER_BASE
        template = ARCFACE_TEMPLATE_112 * ratio
        template[:, 0] += INSWAPPER_X_SHIFT * ratio
        return template
    raise ValueError(f"no ArcFace template for a {size}px crop")


def ffhq_template(size: int) -> np.ndarray:
    return FFHQ_TEMPLATE * size


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform taking ``source`` points to ``target`` (Umeyama)."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / src_c.var(axis=0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_crop(
    image: np.ndarray, kps: np.ndarray, template: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The face warped onto ``template`` in a ``size`` square crop, and the 2x3 matrix used."""
    matrix = similarity_matrix(kps, template)
    crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
    return crop, matrix


def paste_back(image: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with ``crop`` (aligned by ``matrix``) warped back and blended through ``mask``.

    Only the region the crop covers is warped, so the cost does not grow with the frame size.
    """
    height, width = image.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    size = crop.shape[0]
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    mapped = corners @ inverse.T
    x1, y1 = np.floor(mapped.min(axis=0)).astype(int)
    x2, y2 = np.ceil(mapped.max(axis=0)).astype(int) + 1
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        return image
    local = inverse.copy()
    local[:, 2] -= (x1, y1)
    region = (x2 - x1, y2 - y1)
    warped = cv2.warpAffine(crop, local, region, borderValue=0.0).astype(np.float32)
    alpha = cv2.warpAffine(mask, local, region, borderValue=0.0)[:, :, None]
    result = image.copy()
    original = result[y1:y2, x1:x2].astype(np.float32)
    result[y1:y2, x1:x2] = np.clip(alpha * warped + (1.0 - alpha) * original + 0.5, 0, 255).astype(np.uint8)
    return result


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, pixel_offset: float = 1.0) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best first. ``pixel_offset`` 1 is InsightFace's
    inclusive-pixel area convention, 0 OpenCV's."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + pixel_offset) * (y2 - y1 + pixel_offset)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        width = np.maximum(
            0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + pixel_offset
        )
        height = np.maximum(
            0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + pixel_offset
        )
        overlap = width * height / (areas[best] + areas[rest] - width * height)
        order = rest[overlap <= threshold]
    return keep


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """``image`` scaled to fit (width, height) keeping its aspect, padded bottom-right with black,
    and the scale applied (InsightFace's detector input)."""
    image_ratio = image.shape[0] / image.shape[1]
    if image_ratio > height / width:
        new_height, new_width = height, int(height / image_ratio)
    else:
        new_width, new_height = width, int(width * image_ratio)
    scale = new_height / image.shape[0]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(image, (new_width, new_height))
    return canvas, scale
