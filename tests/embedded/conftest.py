import os
import subprocess
import sys
from pathlib import Path

import pytest

from facefleet.modes.demo import make_sample_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """A 4-second 160x90 clip of real faces with a tone (100 frames, 25 fps)."""
    return make_sample_video(
        tmp_path_factory.mktemp("sample") / "sample.mp4", seconds=4, width=160, height=90
    )


def facefleet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180, cwd: Path = REPO
):
    environment = dict(os.environ, FACEFLEET_HOME=str(home), **(env or {}))
    return subprocess.run(
        facefleet_cmd(*args), env=environment, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
