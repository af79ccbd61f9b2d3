"""A task's life over HTTP, as the distributed tests and the benches drive it: the standard
clip and job, submit, wait for a state, download, and the one check that an output is the
reference's bytes (``expect_identical_output``, naming the frames that differ if not); and
what a task left in the bucket."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import requests

from cli.commands.api_calls import download_output, submit_task
from facefleet.records import keys
from tests.harness.services import S3Server
from tests.media import frame_index, make_clip

FRAMES = 96
JOB = {"processors": "none", "chunk_frames": 48, "segment_frames": 8}  # 2 chunks x 6 segments
SEGMENTS_PER_CHUNK = 6


def clip(path: Path, frames: int = FRAMES) -> Path:
    if not path.exists():
        make_clip(path, width=96, height=64, frames=frames, fps=25, audio="aac", gop=12)
    return path


def corrupt_keyframe(source: Path, path: Path, frame: int) -> Path:
    """``source`` with the H.264 data of keyframe ``frame`` overwritten: it still probes (the
    packets are intact), but decoding that region fails."""
    data = bytearray(source.read_bytes())
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        for index, packet in enumerate(p for p in container.demux(stream) if p.size):
            if index == frame:
                assert packet.is_keyframe and packet.pos is not None
                for i in range(packet.pos + 4, packet.pos + packet.size):
                    data[i] = (i * 7919) % 256
                break
    path.write_bytes(bytes(data))
    return path


def submit(api: str, target: Path, options: dict[str, Any] | None = None, **kwargs: Any) -> str:
    task = submit_task(api, target, [], options or JOB, **kwargs)
    return str(task["id"])


def status(api: str, task_id: str) -> dict[str, Any]:
    response = requests.get(f"{api}/v1/tasks/{task_id}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_state(api: str, task_id: str, states: set[str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(api, task_id)
        if body["state"] in states:
            return body
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not reach {states}: {status(api, task_id)}")


def download(api: str, task_id: str, out: Path) -> bytes:
    return download_output(api, task_id, out).read_bytes()


def expect_identical_output(api: str, task_id: str, reference: bytes, folder: Path) -> Path:
    """Download the task's output into ``folder`` and check that it holds exactly
    ``reference``'s bytes (the message names the frames that differ if not); its path."""
    out = folder / f"{task_id}.mp4"
    download(api, task_id, out)
    assert_identical(out, reference)
    return out


def frame_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame_index(f) for f in container.decode(video=0)]


def assert_identical(out: Path, reference: bytes) -> None:
    """``out`` holds exactly ``reference``'s bytes; if not, the message says where the pictures part."""
    data = out.read_bytes()
    if data == reference:
        return
    expected = out.with_name(f"{out.stem}-reference.mp4")
    expected.write_bytes(reference)
    with av.open(str(out)) as got, av.open(str(expected)) as want:
        pairs = zip(got.decode(video=0), want.decode(video=0), strict=False)
        deltas = [
            (n, int(np.abs(a.to_ndarray().astype(int) - b.to_ndarray().astype(int)).max()))
            for n, (a, b) in enumerate(pairs)
        ]
    differing = [(n, d) for n, d in deltas if d]
    raise AssertionError(
        f"{len(data)} bytes, reference {len(reference)}; frames whose pixels differ (index, max delta): "
        f"{differing[:12]}{' ...' if len(differing) > 12 else ''}"
    )


def has_audio(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio) and any(True for _ in container.decode(audio=0))


def segment_writes(s3: S3Server, task_id: str) -> Counter[str]:
    """How many times each segment object was written (the bucket keeps every version)."""
    counts: Counter[str] = Counter()
    prefix = f"{keys.TaskKeys(task_id).work_prefix}segments/"
    paginator = s3.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=s3.bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] += 1
    return counts


def bucket_keys(s3: S3Server, prefix: str = "") -> set[str]:
    found: set[str] = set()
    paginator = s3.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=s3.bucket, Prefix=prefix):
        found.update(item["Key"] for item in page.get("Contents", []))
    return found
