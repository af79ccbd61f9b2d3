"""A worker's peak memory per chunk, measured in the worker (the kernel's high-water mark,
reset as each chunk starts) and logged with the chunk's outcome: it depends on the frame
size and the segment length, not on how many frames the chunk holds."""

from __future__ import annotations

import re

from tests.harness.tasks import submit, wait_state
from tests.media import make_clip

FRAMES = 200
_PEAK = re.compile(r"chunk (\d+) of task (\w+): \w+ \(peak RSS (\d+) MiB\)")


def _peaks(fleet, task_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [
        int(mib)
        for worker in fleet.workers
        for _, task, mib in _PEAK.findall(worker.text())
        if task == task_id
    ]


def test_a_chunk_five_times_longer_peaks_no_higher(api, fleet, tmp_path):
    target = tmp_path / "wide.mp4"
    make_clip(target, width=640, height=360, frames=FRAMES, fps=25, gop=20)
    runs = {}
    for name, chunk_frames in (("warm-up", 40), ("short", 40), ("long", FRAMES)):
        options = {"processors": "none", "chunk_frames": chunk_frames, "segment_frames": 20}
        task_id = submit(api, target, options)
        assert wait_state(api, task_id, {"succeeded", "failed", "cancelled"}, 120)["state"] == "succeeded"
        runs[name] = _peaks(fleet, task_id)
    assert len(runs["short"]) == FRAMES // 40 and len(runs["long"]) == 1, runs
    # a chunk that kept its frames would need 200 x 640 x 360 x 1.5 bytes (66 MiB) more
    assert max(runs["long"]) <= max(runs["short"]) * 1.1 + 8, runs
