from pathlib import Path

import pytest

from facefleet.modes.demo import make_sample_video
from tests.harness.cli import real_detectors


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """A 4-second 160x90 clip of real faces with a tone (100 frames, 25 fps)."""
    return make_sample_video(
        tmp_path_factory.mktemp("sample") / "sample.mp4", seconds=4, width=160, height=90
    )


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The folder of the real detectors (the test skips without them, fails under CI)."""
    return real_detectors()
