"""Build the face models a job's options name, from verified files and cached sessions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.faces.attributes import GenderAgeModel
from pipeline.faces.batched_detection import batch_session
from pipeline.faces.detectors import DETECTOR_CLASSES, DetectorSettings
from pipeline.faces.masks import BisenetParser, FaceMasker, MaskSettings, XsegOccluder, mask_settings
from pipeline.faces.models import ArcFaceRecognizer, GfpganEnhancer, InSwapper
from pipeline.faces.types import FaceDetector
from pipeline.models import ModelStore, load_model, oom
from pipeline.models.derived import swapper_files
from pipeline.models.registry import model_names
from pipeline.models.sessions import open_session
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

BATCH_CHECK_FACES = 3
BATCH_CHECK_TOLERANCE = 1e-4
BATCH_CHECK_SEED = 20240601

# (model path, providers) -> the session the swapper runs on (the batch copy when it is equal)
_swapper_sessions: dict[tuple[str, tuple[str, ...]], tuple[Any, np.ndarray]] = {}
_swapper_lock = threading.Lock()


def _load(runtime: Runtime, options: Mapping[str, Any], option: str) -> Any:
    name, kinds = model_names(options)[option]
    return load_model(runtime, name, kinds)


def detector_settings(options: Mapping[str, Any]) -> DetectorSettings:
    return DetectorSettings(
        score=float(options.get("detector_score", 0.5)),
        nms=float(options.get("detector_nms", 0.4)),
        size=int(options.get("detector_size", 640)),
    )


def load_detector(options: Mapping[str, Any], runtime: Runtime) -> FaceDetector:
    loaded = _load(runtime, options, "face_detector")
    detector: FaceDetector = DETECTOR_CLASSES[loaded.spec.kind](
        loaded.spec.name, loaded.session, detector_settings(options)
    )
    detector.batch_session = batch_session(detector, loaded, runtime)  # type: ignore[attr-defined]
    return detector


def face_batch(options: Mapping[str, Any], runtime: Runtime) -> int:
    """Faces per model call: the worker's FACEFLEET_INFERENCE_BATCH, else the job's face_batch."""
    return oom.capped(runtime.inference_batch or int(options.get("face_batch", 8)))


def load_recognizer(options: Mapping[str, Any], runtime: Runtime) -> ArcFaceRecognizer:
    loaded = _load(runtime, options, "face_recognizer")
    return ArcFaceRecognizer(loaded.spec.name, loaded.session, face_batch(options, runtime))


def load_attributes(options: Mapping[str, Any], runtime: Runtime) -> GenderAgeModel:
    """The attribute model (gender, age) the selector's filters need."""
    name = options.get("face_attribute_model")
    if not name:
        raise PipelineError(
            "the face_selector age and gender filters need an attribute model: set "
            "face_attribute_model (genderage, or one of the model manifest's)"
        )
    loaded = load_model(runtime, str(name), ("genderage",))
    return GenderAgeModel(loaded.spec.name, loaded.session)


def load_enhancer(options: Mapping[str, Any], runtime: Runtime) -> GfpganEnhancer:
    loaded = _load(runtime, options, "enhancer_model")
    return GfpganEnhancer(loaded.spec.name, loaded.session, face_batch(options, runtime))


def load_occluder(options: Mapping[str, Any], runtime: Runtime) -> XsegOccluder:
    loaded = _load(runtime, options, "face_occluder_model")
    return XsegOccluder(loaded.spec.name, loaded.session, face_batch(options, runtime))


def load_parser(options: Mapping[str, Any], runtime: Runtime) -> BisenetParser:
    loaded = _load(runtime, options, "face_parser_model")
    return BisenetParser(loaded.spec.name, loaded.session, face_batch(options, runtime))


def load_masker(options: Mapping[str, Any], runtime: Runtime, side: int, default_blur: float) -> FaceMasker:
    """The job's masks for crops of ``side`` pixels, with the models its mask types need."""
    settings: MaskSettings = mask_settings(options, default_blur)
    occluder = load_occluder(options, runtime) if "occlusion" in settings.types else None
    parser = load_parser(options, runtime) if "region" in settings.types else None
    return FaceMasker(settings, side, occluder, parser)


def load_swapper(options: Mapping[str, Any], runtime: Runtime) -> InSwapper:
    """The swapper on its symbolic-batch copy when that copy gives the same outputs, else per face."""
    loaded = _load(runtime, options, "swapper_model")
    key = (str(loaded.path.resolve()), tuple(runtime.providers))
    with _swapper_lock:
        if key not in _swapper_sessions:
            batch_path, emap = swapper_files(loaded.path, loaded.spec, runtime.model_dir)
            session = loaded.session
            if batch_path is not None:
                batched = open_session(batch_path, loaded.spec, runtime)
                if batch_matches(loaded.session, batched):
                    session = batched
                else:
                    log.warning(
                        "model %s: the batch copy differs from the original; one face at a time",
                        loaded.spec.name,
                    )
            _swapper_sessions[key] = (session, emap)
        session, emap = _swapper_sessions[key]
    return InSwapper(loaded.spec.name, session, emap, face_batch(options, runtime))


def load_models(names: Sequence[str], runtime: Runtime) -> None:
    """Load each named model into this process's caches (verified, opened, run once on a
    blank input), so that a worker's first chunk pays nothing for them; a ModelError says
    which model is missing and how to get it."""
    store = ModelStore.for_runtime(runtime)
    for name in names:
        kind = store.spec(name).kind
        if kind == "inswapper":  # its batch copy too, as the first job would build it
            load_swapper({"swapper_model": name}, runtime)
        else:
            load_model(runtime, name, (kind,))


def batch_matches(single: Any, batched: Any) -> bool:
    """Whether ``batched`` run on several faces at once equals ``single`` run on each alone."""
    rng = np.random.default_rng(BATCH_CHECK_SEED)
    inputs = single.get_inputs()
    target = rng.random((BATCH_CHECK_FACES, *inputs[0].shape[1:]), dtype=np.float32)
    source = rng.standard_normal((BATCH_CHECK_FACES, *inputs[1].shape[1:]), dtype=np.float32)
    names = [i.name for i in inputs]
    try:
        together = batched.run(None, {names[0]: target, names[1]: source})[0]
    except Exception as exc:  # onnxruntime's own errors: a shape it cannot batch
        log.warning("the batch copy cannot run %d faces at once: %s", BATCH_CHECK_FACES, exc)
        return False
    alone = np.concatenate(
        [
            single.run(None, {names[0]: target[i : i + 1], names[1]: source[i : i + 1]})[0]
            for i in range(BATCH_CHECK_FACES)
        ]
    )
    return together.shape == alone.shape and bool(np.allclose(together, alone, atol=BATCH_CHECK_TOLERANCE))


def clear_swapper_cache() -> None:
    with _swapper_lock:
        _swapper_sessions.clear()
