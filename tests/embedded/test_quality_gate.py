"""The quality gate end to end in embedded mode (issue 27), with the real YuNet detector and
generated recogniser and swappers: a swapper that leaves the target face as it was fails on
identity, a faithful one passes, a swap with the enhancer keeps the background; the figures
are the same when the job is measured twice, and the CLI prints them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from facefleet.config.options import parse_options
from facefleet.config.settings import Settings
from facefleet.modes.demo import source_face
from facefleet.modes.embedded import JobRequest, run_job
from facefleet.observability import metrics
from pipeline.faces.geometry import align_crop, arcface_template
from pipeline.faces.loading import load_detector
from pipeline.runtime import Runtime
from tests.embedded.conftest import run_cli
from tests.faces.models import (
    ENHANCER,
    FAITHFUL_SWAPPER,
    RECOGNIZER,
    UNCHANGED_SWAPPER,
    write_test_models,
)
from tests.media import write_clip_of

EVERY = 5  # frames: 40 frames sample 8


@pytest.fixture(scope="module")
def shared_yunet() -> Path:
    from tests.faces.conftest import _shared_models

    folder = _shared_models()
    if not (folder / "face_detection_yunet_2026may.onnx").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the real YuNet detector is missing from {folder}")
        pytest.skip(f"the real YuNet detector is missing from {folder}")
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, shared_yunet) -> dict[str, Path]:
    """The generated models, the faithful swapper pasting the source's own aligned face."""
    folder = tmp_path_factory.mktemp("quality-models")
    source = source_face(folder / "source.png")
    image = cv2.imread(str(source))
    detector = load_detector(
        {"face_detector": "yunet"}, Runtime(model_dir=folder / "cache", model_mirrors=(str(shared_yunet),))
    )
    face = max(detector.detect(image), key=lambda f: f.area)
    crop, _ = align_crop(image, face.kps, arcface_template(128), 128)
    manifest = write_test_models(folder / "generated", faithful_face=crop)
    return {"source": source, "manifest": manifest, "mirror": shared_yunet, "cache": folder / "cache"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """40 frames (25 fps, 480x360) panning across a photograph of one face (the astronaut)."""
    photo = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    frames = [cv2.resize(photo[10:250, 60 + 2 * i : 380 + 2 * i], (480, 360)) for i in range(40)]
    return write_clip_of(tmp_path_factory.mktemp("quality-clip") / "astronaut.mp4", frames)


def _settings(home: Path, models: dict[str, Path]) -> Settings:
    return Settings(
        home=home,
        model_manifest=models["manifest"],
        model_dir=models["cache"],
        model_mirrors=str(models["mirror"]),
        quality_sample_every=EVERY,
    )


def _swap(tmp_path: Path, clip: Path, models: dict[str, Path], swapper: str, **more: object):
    options = parse_options(
        {
            "processors": more.pop("processors", "face_swapper"),
            "face_detector": "yunet",
            "face_recognizer": RECOGNIZER,
            "swapper_model": swapper,
            "enhancer_model": ENHANCER,
            "chunk_frames": 20,
            "segment_frames": 10,
            **more,
        }
    )
    reported: list[dict | None] = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    output = tmp_path / f"{swapper}.mp4"
    request = JobRequest(target=clip, sources=(models["source"],), reference=None, output=output, options=options)
    run_job(_settings(tmp_path / "home", models), request, on_quality=reported.append)
    assert reported and reported[0] is not None
    return reported[0]


def _failed_count(processor: str) -> float:
    for family in metrics.QUALITY_FAILED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == {"tenant": "default", "processor": processor}:
                return sample.value
    return 0.0


def test_a_swapper_that_leaves_the_face_unchanged_fails_on_identity(tmp_path, clip, models):
    before = _failed_count("face_swapper")
    quality = _swap(tmp_path, clip, models, UNCHANGED_SWAPPER)
    print(json.dumps(quality))
    assert quality["passed"] is False
    assert any("identity" in reason for reason in quality["reasons"])
    assert quality["id_similarity"]["samples"] == 8  # one face in each of the 8 sampled frames
    assert quality["id_similarity"]["mean"] < 0.85
    assert quality["face_coverage"] == 1.0
    assert quality["psnr_outside_db"] >= 30  # the background is untouched: only identity fails
    assert _failed_count("face_swapper") == before + 1


def test_a_faithful_swapper_passes_and_is_measured_the_same_twice(tmp_path, clip, models):
    before = _failed_count("face_swapper")
    first = _swap(tmp_path / "one", clip, models, FAITHFUL_SWAPPER)
    second = _swap(tmp_path / "two", clip, models, FAITHFUL_SWAPPER)
    print(json.dumps(first))
    assert first["passed"] is True and first["reasons"] == []
    assert first["id_similarity"]["mean"] >= 0.85
    assert first["id_similarity"]["min"] <= first["id_similarity"]["p05"] <= first["id_similarity"]["mean"]
    assert first == second  # deterministic: the same task measured twice
    assert _failed_count("face_swapper") == before


def test_a_swap_with_the_enhancer_keeps_the_background(tmp_path, clip, models):
    quality = _swap(tmp_path, clip, models, FAITHFUL_SWAPPER, processors="face_swapper,face_enhancer")
    print(json.dumps(quality))
    assert quality["psnr_outside_db"] >= 30
    assert quality["face_coverage"] == 1.0


def test_the_cli_prints_the_quality_of_the_run(tmp_path, clip, models):
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(models["manifest"]),
        "FACEFLEET_MODEL_DIR": str(models["cache"]),
        "FACEFLEET_MODEL_MIRRORS": str(models["mirror"]),
        "FACEFLEET_QUALITY_SAMPLE_EVERY": "10",
    }
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target", str(clip),
        "--source", str(models["source"]),
        "--output", str(tmp_path / "out.mp4"),
        "--processors", "face_swapper",
        "--face-detector", "yunet",
        "--face-recognizer", RECOGNIZER,
        "--swapper-model", UNCHANGED_SWAPPER,
        "--no-progress",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # under a threshold the task still succeeds
    line = next(line for line in result.stderr.splitlines() if line.startswith("quality: "))
    quality = json.loads(line.removeprefix("quality: "))
    assert set(quality) == {"id_similarity", "psnr_outside_db", "face_coverage", "passed", "reasons"}
    assert set(quality["id_similarity"]) == {"mean", "p05", "min", "samples"}
    assert quality["passed"] is False and quality["id_similarity"]["samples"] == 4
