"""Output options through the API and `facefleet submit`, and the same output bytes from
embedded and distributed modes for the same input and options: an input made by the ffmpeg
CLI with two audio tracks, a subtitle track and chapters, into Matroska."""

from __future__ import annotations

import json

import pytest
import requests

from tests.ffmpeg_media import ffprobe, make_kind
from tests.harness.cli import run_cli
from tests.harness.tasks import assert_identical, clip, wait_state

OPTIONS = {"chunk_frames": 13, "segment_frames": 5, "container": "mkv", "crf": 20, "codec": "h264"}


def test_embedded_and_distributed_outputs_are_the_same_bytes(api, env, tmp_path):
    target = make_kind("tracks", tmp_path / "media")
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()]
    common = ["--processors", "none", *flags]
    submitted = run_cli(tmp_path / "client", "submit", str(target), *common, env={"FACEFLEET_API_URL": api})
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    assert {k: body["options"][k] for k in OPTIONS} == OPTIONS
    fetched = run_cli(tmp_path / "client", "download", task_id, env={"FACEFLEET_API_URL": api}, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    distributed = tmp_path / f"{task_id}.mkv"  # the default name follows the container
    assert distributed.is_file()

    embedded = tmp_path / "embedded.mkv"
    threads = {"FACEFLEET_ENCODER_THREADS": env["FACEFLEET_ENCODER_THREADS"]}  # as the workers
    result = run_cli(
        tmp_path / "home",
        "run",
        *("--target", str(target), "--output", str(embedded), "--no-progress", *common),
        env=threads,
    )
    assert result.returncode == 0, result.stderr
    types = [s["codec_type"] for s in ffprobe(embedded, "-show_streams")["streams"]]
    assert types == ["video", "audio", "audio", "subtitle"]
    assert_identical(embedded, distributed.read_bytes())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"codec": "vp9"}, "codec"),
        ({"container": "avi"}, "container"),
        ({"pix_fmt": "rgb24"}, "pix_fmt"),
        ({"faststart": "sometimes"}, "faststart"),
        ({"codec": "hevc", "crf": 60}, "crf"),
        ({"codec": "av1", "pix_fmt": "yuv422p"}, "pix_fmt"),
    ],
)
def test_bad_output_options_are_a_422_problem(api, tmp_path, options, field):
    target = clip(tmp_path / "in.mp4").read_bytes()
    response = requests.post(
        f"{api}/v1/tasks",
        files={"target": ("in.mp4", target)},
        data={"options": json.dumps({"processors": "none", **options})},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.json()["detail"]
