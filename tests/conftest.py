"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from tests.media import Clip, make_clip
from tests.pipeline.engine import KINDS


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    """Index-stamped clips of every kind the engine must handle, made once per session."""
    folder = tmp_path_factory.mktemp("clips")
    return {kind: make_clip(folder / file, **options) for kind, (file, options) in KINDS.items()}
