"""Detection over several frames in one call.

The published detectors declare a batch of 1. Their symbolic-batch copy (``derived.py``)
runs a whole batch of frames at once; it is used only where, on check images, it gives each
image exactly (bit for bit) what the batch-1 graph gives, so the output video does not
depend on the batch size (``FACEFLEET_INFERENCE_BATCH``). Elsewhere frames go one by one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.faces.types import Face
from pipeline.models import LoadedModel
from pipeline.models.derived import batch_copy
from pipeline.models.sessions import open_session
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_IMAGES = 3
CHECK_SHAPE = (240, 320, 3)
CHECK_SEED = 20261207

# (model path, providers, detector input size) -> the batch session, or None where it differs
_copies: dict[tuple[str, tuple[str, ...], int], Any] = {}
_lock = threading.Lock()


def batch_session(detector: Any, loaded: LoadedModel, runtime: Runtime) -> Any | None:
    """The session that runs ``detector`` over many frames at once, or None (one at a time)."""
    key = (str(loaded.path.resolve()), tuple(runtime.providers), int(detector.settings.size))
    with _lock:
        if key not in _copies:
            _copies[key] = _checked_copy(detector, loaded, runtime)
        return _copies[key]


def _checked_copy(detector: Any, loaded: LoadedModel, runtime: Runtime) -> Any | None:
    path = batch_copy(loaded.path, loaded.spec, runtime.model_dir)
    if path is None:
        return None
    try:
        session = open_session(path, loaded.spec, runtime)
        rng = np.random.default_rng(CHECK_SEED)
        images = [rng.integers(0, 256, CHECK_SHAPE, dtype=np.uint8) for _ in range(CHECK_IMAGES)]
        blobs = [detector.blob(image)[0] for image in images]
        alone = [detector.session.run(detector.output_names, {detector.input_name: b}) for b in blobs]
        together = _run(detector, session, blobs)
    except Exception as exc:  # onnxruntime's own errors: a graph that cannot take a batch
        log.warning(
            "model %s: the batch copy cannot run %d images at once (%s)", loaded.spec.name, CHECK_IMAGES, exc
        )
        return None
    same = all(
        len(a) == len(b)
        and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(alone, together, strict=True)
    )
    if not same:
        log.warning(
            "model %s: the batch copy differs from the original; one frame at a time", loaded.spec.name
        )
        return None
    log.info("model %s: detection runs over whole batches of frames", loaded.spec.name)
    return session


def _run(detector: Any, session: Any, blobs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    outputs = session.run(detector.output_names, {detector.input_name: np.concatenate(blobs)})
    split: list[list[np.ndarray]] = detector.split(outputs, len(blobs))
    return split


def detect_all(detector: Any, images: Sequence[np.ndarray], session: Any | None) -> list[list[Face]]:
    """The faces of each image: in one call on ``session`` where there is one, else one by one."""
    if session is None or len(images) < 2:
        return [detector.detect(image) for image in images]
    prepared = [detector.blob(image) for image in images]
    raw = _run(detector, session, [blob for blob, _ in prepared])
    return [detector.decode(outputs, scale) for outputs, (_, scale) in zip(raw, prepared, strict=True)]


def clear_batch_sessions() -> None:
    with _lock:
        _copies.clear()
