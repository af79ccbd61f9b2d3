"""Submit over HTTP, let the workers plan, process and stitch, download the output."""

from __future__ import annotations

import os
import subprocess
import sys

import av
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
from tests.media import make_clip


def test_submitted_task_succeeds_frame_exact(api, tmp_path):
    target = clip(tmp_path / "in.mp4")
    task_id = submit(api, target)
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    assert body["progress"]["frames_done"] == body["progress"]["frames_total"] == FRAMES
    assert body["progress"]["percent"] == 100.0
    assert body["chunks"] == {"succeeded": 2}
    assert body["output"] == {
        "width": 96,
        "height": 64,
        "coded_width": 96,
        "coded_height": 64,
        "padded": None,
    }
    out = tmp_path / "out.mp4"
    download(api, task_id, out)
    assert frame_indices(out) == list(range(FRAMES))
    assert has_audio(out)


def test_an_odd_size_is_padded_and_the_task_says_so(api, tmp_path):
    """97x63 in: H.264's 4:2:0 codes it as 98x64 (the last column and row repeated), and the
    task's output object says so, with how to keep the exact size."""
    target = tmp_path / "odd.mp4"
    make_clip(target, width=97, height=63, frames=FRAMES, fps=25, audio="aac", gop=12)
    task_id = submit(api, target)
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    output = body["output"]
    assert (output["width"], output["height"], output["coded_width"], output["coded_height"]) == (
        97,
        63,
        98,
        64,
    )
    assert output["padded"].startswith("97x63 coded as 98x64") and "--pix-fmt yuv444p" in output["padded"]
    listed = requests.get(f"{api}/v1/tasks?state=succeeded&limit=100", timeout=10).json()["items"]
    assert next(item for item in listed if item["id"] == task_id)["output"] == output
    out = tmp_path / "out.mp4"
    download(api, task_id, out)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.codec_context.pix_fmt) == (98, 64, "yuv420p")
    assert frame_indices(out) == list(range(FRAMES))


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
