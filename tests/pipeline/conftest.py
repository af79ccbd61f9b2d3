"""Parametrisation over the generated clip kinds (the clips themselves: tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.pipeline.engine import KINDS


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
