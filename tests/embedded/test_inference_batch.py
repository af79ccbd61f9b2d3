"""FACEFLEET_INFERENCE_BATCH changes how many frames go through the models at once, never the
output: a face_swapper job with batch 1 and batch 8 gives the same bytes, with both real
detectors (their batched copies) and the generated recogniser and swapper, on the CPU."""

from __future__ import annotations

import hashlib

import pytest

from facefleet.modes.demo import make_sample_video, source_face
from tests.faces.models import RECOGNIZER, SWAPPER, write_test_models
from tests.harness.cli import run_cli


@pytest.mark.parametrize("detector", ["det_500m", "yunet"])
def test_batch_1_and_batch_8_give_the_same_bytes(tmp_path, detector):
    from tests.harness.cli import shared_models as shared_models_folder

    models = shared_models_folder()
    if not (models / "det_500m.onnx").is_file():
        pytest.skip(f"the real detectors are missing from {models}")
    clip = make_sample_video(tmp_path / "clip.mp4", seconds=1.2, width=640, height=360)
    source = source_face(tmp_path / "source.png")
    manifest = write_test_models(tmp_path / "generated")
    digests = {}
    for batch in ("1", "8"):
        out = tmp_path / f"batch-{batch}.mp4"
        env = {
            "FACEFLEET_MODEL_MANIFEST": str(manifest),
            "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
            "FACEFLEET_MODEL_MIRRORS": str(models),
            "FACEFLEET_INFERENCE_BATCH": batch,
        }
        result = run_cli(
            tmp_path / "home",
            *("run", "--target", str(clip), "--output", str(out), "--no-progress"),
            *("--chunk-frames", "15", "--segment-frames", "15"),
            *("--processors", "face_swapper", "--source", str(source), "--face-detector", detector),
            *("--face-recognizer", RECOGNIZER, "--swapper-model", SWAPPER),
            env=env,
        )
        assert result.returncode == 0, result.stderr
        digests[batch] = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digests["1"] == digests["8"]
