"""`facefleet submit | status | download`: the client a user runs instead of curl."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.harness.cli import REPO
from tests.harness.tasks import FRAMES, clip, frame_indices


def _cli(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FACEFLEET_API_URL=api)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_submit_follow_and_download(api, tmp_path):
    target = clip(tmp_path / "in.mp4")
    submitted = _cli(
        api,
        "submit",
        str(target),
        "--processors",
        "none",
        "--chunk-frames",
        "48",
        "--segment-frames",
        "8",
        "--follow",
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    status = _cli(api, "status", task_id)
    assert status.returncode == 0 and "succeeded" in status.stdout and "100.0%" in status.stdout
    out = tmp_path / "out.mp4"
    downloaded = _cli(api, "download", task_id, "-o", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    assert frame_indices(out) == list(range(FRAMES))


def test_client_reports_refusals(api, tmp_path):
    result = _cli(api, "submit", str(clip(tmp_path / "in.mp4")), "--options", '{"bogus": 1}')
    assert result.returncode == 1 and "422" in result.stderr and "unknown option" in result.stderr
    missing = _cli(api, "status", "0" * 32)
    assert missing.returncode == 1 and "404" in missing.stderr
    unreachable = _cli("http://127.0.0.1:9", "status", "x")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
