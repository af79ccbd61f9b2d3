"""The provenance tests' face job: a tiny clip of faces, `facefleet run` and `facefleet
verify` on it, and what a kept embedded home recorded."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from facefleet.modes.demo import make_sample_video
from tests.harness.cli import run_cli


def yunet_folder() -> Path:
    """The shared model folder, where it holds the real YuNet detector (else a skip; under
    CI=true a failure)."""
    from tests.harness.cli import shared_models as folder

    found = folder()
    if not (found / "face_detection_yunet_2026may.onnx").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the real YuNet detector is missing from {found}")
        pytest.skip(f"the real YuNet detector is missing from {found}")
    return found


# the face job of these tests: faces blurred (YuNet finds them), at a small detector size
FACE_JOB = ["--processors", "face_anonymizer", "--face-detector", "yunet", "--detector-size", "320"]


def tiny_clip(folder: Path) -> Path:
    """2 s of faces at 256x144 (a height in steps of 4, as the face path needs)."""
    return make_sample_video(folder / "tiny.mp4", seconds=2, width=256, height=144)


def run_job(home: Path, target: Path, out: Path, *extra: str, env: dict[str, str]) -> Any:
    return run_cli(
        home, "run", "--target", str(target), "--output", str(out), "--no-progress", *extra, env=env
    )


def verify(home: Path, path: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli(home, "verify", str(path), "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def stored_provenance(home: Path) -> dict[str, Any]:
    """The one task's provenance in an embedded home kept with --keep-work."""
    with sqlite3.connect(home / "facefleet.db") as db:
        (value,) = db.execute("SELECT provenance FROM tasks").fetchone()
    return dict(json.loads(value))
