"""The GPU host settings: the inference batch, the codecs and the GPU a worker is pinned to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from facefleet.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_the_batch_and_pinned_gpu_reach_the_pipeline(monkeypatch):
    monkeypatch.setenv("FACEFLEET_INFERENCE_BATCH", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("FACEFLEET_HWACCEL", "auto")
    settings = Settings()
    runtime = settings.runtime()
    assert (runtime.inference_batch, runtime.gpu, settings.hwaccel) == (8, "3", "auto")


def test_unset_the_jobs_face_batch_decides(monkeypatch):
    monkeypatch.delenv("FACEFLEET_INFERENCE_BATCH", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    runtime = Settings().runtime()
    assert (runtime.inference_batch, runtime.gpu) == (0, None)


def test_a_batch_out_of_range_is_refused_with_its_name(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cli", "models", "list"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FACEFLEET_INFERENCE_BATCH": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "FACEFLEET_INFERENCE_BATCH" in done.stderr, done.stderr
