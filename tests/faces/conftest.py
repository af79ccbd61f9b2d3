"""Fixtures: the real detectors in the shared model folder, and the generated models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from pipeline.faces.loading import clear_swapper_cache
from pipeline.models import clear_sessions
from pipeline.runtime import Runtime
from tests.harness.cli import REPO, real_detectors

from .models import write_test_models

INSIGHTFACE_IMAGES = REPO / ".venv/lib/python3.11/site-packages/insightface/data/images"


@pytest.fixture(scope="session")
def shared_models() -> Path:
    return real_detectors()


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_models(tmp_path_factory.mktemp("generated-models"))


@pytest.fixture
def runtime(tmp_path: Path, shared_models: Path, manifest: Path) -> Runtime:
    return Runtime(
        model_dir=tmp_path / "model-dir", model_mirrors=(str(shared_models),), model_manifest=manifest
    )


@pytest.fixture
def fresh_caches():
    clear_sessions()
    clear_swapper_cache()
    yield
    clear_sessions()
    clear_swapper_cache()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def group_photo() -> np.ndarray:
    path = INSIGHTFACE_IMAGES / "t1.jpg"
    image = cv2.imread(str(path))
    if image is None:
        pytest.skip(f"insightface's sample image {path} is not installed")
    return image
