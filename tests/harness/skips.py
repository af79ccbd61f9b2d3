"""What a missing service does to a test: it skips, unless CI=true, where it fails."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.harness.services import ServiceUnavailable

CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not reachable")


@contextlib.contextmanager
def required() -> Iterator[None]:
    """A ``ServiceUnavailable`` raised in the block skips the test (fails it under CI)."""
    try:
        yield
    except ServiceUnavailable as missing:
        unavailable(str(missing))
