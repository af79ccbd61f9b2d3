"""With batching on (FACEFLEET_INFERENCE_BATCH=16), a face swap job's peak memory, the whole
process tree's, does not grow with the video's length: a 10-minute video peaks within 10 %
of a 1-minute one (frames stream through the batches, none are kept)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facefleet.modes.demo import make_sample_video, source_face
from tests.faces.models import RECOGNIZER, SWAPPER, write_test_models
from tests.harness.cli import REPO, facefleet_cmd
from tests.peak_memory import peak_mib

FPS = 2  # a low rate keeps 10 minutes of video (1200 frames, 75 batches) affordable on a shared CPU
SIZE = (320, 180)


def _peak_mib(home: Path, target: Path, env: dict[str, str], source: Path) -> float:
    out = home.parent / f"{target.stem}-out.mp4"
    args = [
        *("run", "--target", str(target), "--output", str(out), "--no-progress"),
        *("--processors", "face_swapper", "--source", str(source), "--face-detector", "yunet"),
        *("--detector-size", "320", "--face-recognizer", RECOGNIZER, "--swapper-model", SWAPPER),
    ]
    return peak_mib(facefleet_cmd(*args), {**os.environ, **env, "FACEFLEET_HOME": str(home)}, REPO)


@pytest.mark.timeout(900)
def test_a_ten_times_longer_swap_job_peaks_no_higher_with_batching(tmp_path):
    from tests.harness.cli import shared_models as shared_models_folder

    models = shared_models_folder()
    if not (models / "face_detection_yunet_2026may.onnx").is_file():
        pytest.skip(f"the real YuNet detector is missing from {models}")
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(write_test_models(tmp_path / "generated")),
        "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
        "FACEFLEET_MODEL_MIRRORS": str(models),
        "FACEFLEET_INFERENCE_BATCH": "16",
    }
    source = source_face(tmp_path / "source.png")
    clips = {
        name: make_sample_video(
            tmp_path / f"{name}.mp4", seconds=seconds, width=SIZE[0], height=SIZE[1], fps=FPS
        )
        for name, seconds in (("one-minute", 60), ("ten-minutes", 600))
    }
    peaks = {name: _peak_mib(tmp_path / f"home-{name}", clip, env, source) for name, clip in clips.items()}
    print(peaks)
    assert peaks["ten-minutes"] <= peaks["one-minute"] * 1.1, peaks
