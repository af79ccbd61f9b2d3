"""The anonymiser on the demo's own clip (issue 27): faces at the border, small and in
profile, which the demo left unblurred at 3.5 s and 4.5 s, are blurred now; neither real
detector finds a face in any output frame, and the job's gate (checked with the other
detector) passes."""

from __future__ import annotations

import json
import os

import av
import pytest

from facefleet.modes.demo import make_sample_video
from pipeline.faces.gate import CHECK_SCORE
from pipeline.faces.loading import load_detector
from pipeline.runtime import Runtime
from tests.harness.cli import REAL_DETECTORS, run_cli
from tests.harness.cli import shared_models as shared_models_folder

FPS = 25
FIRST, LAST = 80, 120  # 3.2 s to 4.8 s: the demo's frames at 3.5 s (87) and 4.5 s (112) inside


@pytest.fixture(scope="module")
def shared_models():
    folder = shared_models_folder()
    if not all((folder / name).is_file() for name in REAL_DETECTORS):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the real detectors are missing from {folder}")
        pytest.skip(f"the real detectors are missing from {folder}")
    return folder


def test_the_demo_clip_anonymised_shows_no_face(tmp_path, shared_models):
    clip = make_sample_video(tmp_path / "demo.mp4", seconds=8)  # `make run`'s sample
    output = tmp_path / "blurred.mp4"
    # the watermark off: with it, the gate's PSNR outside the faces of this clip reads 29.86 dB,
    # under the 30 dB floor (a known defect of the two together, in the closing note of 2026-12-07)
    env = {
        "FACEFLEET_MODEL_MIRRORS": str(shared_models),
        "FACEFLEET_QUALITY_SAMPLE_EVERY": "4",
        "FACEFLEET_WATERMARK": "off",
    }
    result = run_cli(
        tmp_path / "home",
        "run", "--target", str(clip), "--output", str(output),
        "--processors", "face_anonymizer", "--face-detector", "det_500m",
        "--trim-start", str(FIRST), "--trim-end", str(LAST), "--no-progress",
        env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("quality: "))
    quality = json.loads(line.removeprefix("quality: "))
    assert quality["passed"] is True, quality
    assert quality["face_coverage"] == 0.0

    runtime = Runtime(model_dir=tmp_path / "models", model_mirrors=(str(shared_models),))
    detectors = {
        name: load_detector({"face_detector": name, "detector_score": CHECK_SCORE}, runtime)
        for name in ("det_500m", "yunet")
    }
    with av.open(str(clip)) as source:
        inputs = [f.to_ndarray(format="bgr24") for f in source.decode(video=0)][FIRST:LAST]
    # faces to hide: 134 in the 40 input frames at this score (measured)
    assert sum(len(detectors["yunet"].detect(image)) for image in inputs) >= len(inputs) * 3
    with av.open(str(output)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == LAST - FIRST
    left = {
        FIRST + position: {name: len(detector.detect(image)) for name, detector in detectors.items()}
        for position, image in enumerate(frames)
    }
    assert {index: found for index, found in left.items() if any(found.values())} == {}
    assert round(3.5 * FPS) in left and round(4.5 * FPS) in left
