"""Fixtures: a test certificate chain and the face job's models (the job itself, the clip,
`facefleet run` and `facefleet verify`: ``tests/harness/provenance.py``)."""

from __future__ import annotations

import pytest

from tests.harness.provenance import yunet_folder
from tests.provenance.certificates import TestChain, make_chain


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> TestChain:
    return make_chain(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="session")
def face_env(tmp_path_factory) -> dict[str, str]:
    """A face job's models: the real YuNet detector (the anonymizer needs nothing else)."""
    return {
        "FACEFLEET_MODEL_MIRRORS": str(yunet_folder()),
        "FACEFLEET_MODEL_DIR": str(tmp_path_factory.mktemp("models")),
    }
