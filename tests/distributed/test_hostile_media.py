"""Hostile uploads cost the API nothing: a decompression-bomb image, a video whose header
claims a huge frame, a playlist that points elsewhere, and a file that crashes the prober
all answer 422 quickly, and the API keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.distributed.helpers import clip
from tests.media import make_huge_header_avi, make_huge_png, make_playlist


def _submit(api: str, files: dict[str, tuple[str, bytes]]) -> requests.Response:
    return requests.post(
        f"{api}/v1/tasks", files=files, data={"options": '{"processors": "none"}'}, timeout=60
    )


def test_a_decompression_bomb_source_is_refused_from_its_header(api, tmp_path):
    target = clip(tmp_path / "in.mp4").read_bytes()
    bomb = make_huge_png(tmp_path / "face.png", 16000, 16000).read_bytes()  # a few KB
    started = time.monotonic()
    answer = _submit(api, {"target": ("in.mp4", target), "source": ("face.png", bomb)})
    assert answer.status_code == 422, answer.text
    assert "FACEFLEET_MAX_IMAGE_PIXELS" in answer.json()["detail"]
    assert "source image #1" in answer.json()["detail"], answer.json()
    assert time.monotonic() - started < 5


def test_a_video_whose_header_claims_a_huge_frame_is_refused_quickly(api, tmp_path):
    started = time.monotonic()
    answer = _submit(api, {"target": ("huge.avi", make_huge_header_avi(tmp_path / "huge.avi").read_bytes())})
    assert answer.status_code == 422, answer.text
    assert "FACEFLEET_MAX_PIXELS" in answer.json()["detail"]
    assert time.monotonic() - started < 5
    assert requests.get(f"{api}/healthz", timeout=5).ok


def test_a_playlist_is_not_followed(api, tmp_path):
    segment = clip(tmp_path / "seg.ts")
    answer = _submit(
        api, {"target": ("list.m3u8", make_playlist(tmp_path / "list.m3u8", segment).read_bytes())}
    )
    assert answer.status_code == 422, answer.text


@pytest.fixture
def crashing_api(fleet) -> Iterator[str]:
    """An API whose prober child aborts on every file (the test-only switch)."""
    proc, url = fleet.start_api("api-crash", {"FACEFLEET_TEST_PROBER_CRASH": "1"})
    yield url
    proc.stop()


def test_a_file_that_crashes_the_prober_gets_422_and_the_api_stays_up(crashing_api, tmp_path):
    target = clip(tmp_path / "in.mp4").read_bytes()
    for _ in range(2):
        answer = _submit(crashing_api, {"target": ("in.mp4", target)})
        assert answer.status_code == 422, answer.text
        assert "could not be read safely" in answer.json()["detail"]
    assert requests.get(f"{crashing_api}/v1/tasks", timeout=10).status_code == 200  # still serving
