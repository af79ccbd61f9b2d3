"""Embedded and distributed modes give the same output bytes for the same input and options:
an input made by the ffmpeg CLI with two audio tracks, a subtitle track and chapters, into
Matroska, by `facefleet run` and by `facefleet submit` through the API and the workers."""

from __future__ import annotations

from tests.distributed.helpers import assert_identical, download, submit, wait_state
from tests.embedded.conftest import run_cli
from tests.ffmpeg_media import ffprobe, make_kind

OPTIONS = {"processors": "none", "chunk_frames": 13, "segment_frames": 5, "container": "mkv", "crf": 20}


def test_embedded_and_distributed_outputs_are_the_same_bytes(api, env, tmp_path):
    target = make_kind("tracks", tmp_path / "media")
    task_id = submit(api, target, OPTIONS)
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    distributed = tmp_path / "distributed.mkv"
    download(api, task_id, distributed)

    embedded = tmp_path / "embedded.mkv"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in OPTIONS.items()]
    threads = {"FACEFLEET_ENCODER_THREADS": env["FACEFLEET_ENCODER_THREADS"]}  # as the workers
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(target),
        "--output",
        str(embedded),
        "--no-progress",
        *flags,
        env=threads,
    )
    assert result.returncode == 0, result.stderr
    assert [s["codec_type"] for s in ffprobe(embedded, "-show_streams")["streams"]] == [
        "video",
        "audio",
        "audio",
        "subtitle",
    ]
    assert_identical(embedded, distributed.read_bytes())
