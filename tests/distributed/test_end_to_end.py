"""Submit over HTTP, let the workers plan, process and stitch, download the output."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from tests.harness.tasks import (
    FRAMES,
    JOB,
    assert_identical,
    clip,
    download,
    expect_identical_output,
    frame_indices,
    has_audio,
    status,
    submit,
    wait_state,
)


def test_submitted_task_succeeds_frame_exact(api, tmp_path):
    target = clip(tmp_path / "in.mp4")
    task_id = submit(api, target)
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    assert body["progress"]["frames_done"] == body["progress"]["frames_total"] == FRAMES
    assert body["progress"]["percent"] == 100.0
    assert body["chunks"] == {"succeeded": 2}
    out = tmp_path / "out.mp4"
    download(api, task_id, out)
    assert frame_indices(out) == list(range(FRAMES))
    assert has_audio(out)


def test_outputs_are_byte_identical_across_runs(api, tmp_path, reference):
    task_id = submit(api, clip(tmp_path / "in.mp4"))
    assert wait_state(api, task_id, {"succeeded", "failed", "cancelled"})["state"] == "succeeded"
    expect_identical_output(api, task_id, reference, tmp_path)


def test_list_filters_by_state_and_pages(api, reference):
    seen = []
    url = f"{api}/v1/tasks?state=succeeded&limit=1"
    while url:
        page = requests.get(url, timeout=10).json()
        assert all(item["state"] == "succeeded" for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        url = f"{api}/v1/tasks?state=succeeded&limit=1&cursor={cursor}" if cursor else ""
    assert len(seen) == len(set(seen)) >= 1


def test_idempotency_key_returns_the_same_task(api, tmp_path):
    target = clip(tmp_path / "in.mp4")
    first = submit(api, target, idempotency_key="same-key-1")
    second = submit(api, target, idempotency_key="same-key-1")
    assert first == second
    assert wait_state(api, first, {"succeeded", "failed"})["state"] == "succeeded"
    assert status(api, first)["output_url"]


def test_embedded_mode_gives_the_distributed_output_bytes(reference, tmp_path):
    """`facefleet run` on one machine, with the fleet's job options and encoder threads,
    writes exactly the bytes the workers stitched."""
    out = tmp_path / "out.mp4"
    job = [f"--{name.replace('_', '-')}={value}" for name, value in JOB.items()]
    env = dict(os.environ, FACEFLEET_HOME=str(tmp_path / "home"), FACEFLEET_ENCODER_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "cli",
        "run",
        "--target",
        str(clip(tmp_path / "in.mp4")),
        "--output",
        str(out),
    ]
    result = subprocess.run(
        [*command, *job, "--no-progress"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert_identical(out, reference)
