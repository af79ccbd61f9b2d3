"""Generated clips, made once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # tests.media and tests.pipeline.engine, however pytest is started
    sys.path.insert(0, str(REPO))

from tests.media import Clip, make_clip  # noqa: E402
from tests.pipeline.engine import KINDS  # noqa: E402


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    folder = tmp_path_factory.mktemp("clips")
    return {kind: make_clip(folder / file, **options) for kind, (file, options) in KINDS.items()}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
