"""Hostile uploads cost the API nothing: a decompression-bomb image, a video whose header
claims a huge frame, a playlist that points elsewhere, and a file that crashes the prober
all answer 422 quickly, and the API keeps serving. `facefleet run` refuses the same files
with the same message (one submission pipeline serves both modes)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness.cli import run_cli
from tests.harness.tasks import clip
from tests.media import make_huge_header_avi, make_huge_png, make_playlist, make_text_file


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
    with fleet.api_deployment("api-crash", {"FACEFLEET_TEST_PROBER_CRASH": "1"}) as url:
        yield url


def test_a_file_that_crashes_the_prober_gets_422_and_the_api_stays_up(crashing_api, tmp_path):
    target = clip(tmp_path / "in.mp4").read_bytes()
    for _ in range(2):
        answer = _submit(crashing_api, {"target": ("in.mp4", target)})
        assert answer.status_code == 422, answer.text
        assert "could not be read safely" in answer.json()["detail"]
    assert requests.get(f"{crashing_api}/v1/tasks", timeout=10).status_code == 200  # still serving


def _hostile(kind: str, tmp_path: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """The files (by field) and options of one hostile submission."""
    target = clip(tmp_path / "in.mp4")
    if kind == "bomb source":
        return {"target": target, "source": make_huge_png(tmp_path / "face.png")}, {}
    if kind == "video source":
        return {"target": target, "source": target}, {"processors": "face_swapper"}
    if kind == "huge header":
        return {"target": make_huge_header_avi(tmp_path / "huge.avi")}, {}
    if kind == "playlist":
        return {"target": make_playlist(tmp_path / "list.m3u8", clip(tmp_path / "seg.ts"))}, {}
    if kind == "text":
        return {"target": make_text_file(tmp_path / "notes.mp4")}, {}
    if kind == "trim past the end":
        return {"target": target}, {"trim_start": 5000}
    assert kind == "prober crash"
    return {"target": target}, {}


@pytest.mark.parametrize(
    "kind",
    ["bomb source", "video source", "huge header", "playlist", "text", "trim past the end", "prober crash"],
)
def test_both_modes_refuse_the_same_inputs_with_the_same_message(request, api, tmp_path, kind):
    files, options = _hostile(kind, tmp_path)
    crash = kind == "prober crash"
    url = request.getfixturevalue("crashing_api") if crash else api
    answer = requests.post(
        f"{url}/v1/tasks",
        files={field: (path.name, path.read_bytes()) for field, path in files.items()},
        data={"options": json.dumps({"processors": "none", **options})},
        timeout=60,
    )
    assert answer.status_code == 422, answer.text
    flags = [f"--{field}={path}" for field, path in files.items()]
    flags += [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    result = run_cli(
        tmp_path / "home",
        "run",
        *flags,
        f"--output={tmp_path / 'out.mp4'}",
        env={"FACEFLEET_TEST_PROBER_CRASH": "1"} if crash else None,
    )
    assert result.returncode == 1, result.stderr
    # the refusal is the last line (a warning about an input the chain ignores may come first)
    assert result.stderr.strip().splitlines()[-1] == f"facefleet: {answer.json()['detail']}"
    assert not (tmp_path / "out.mp4").exists()
