"""Each deployment's processes get a fresh metrics directory of their own, set before
prometheus_client picks its mode (in a child process: the mode is chosen at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, base: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if base is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(base)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)


def test_a_fresh_private_dir_under_the_given_one(tmp_path):
    code = (
        "import os\n"
        "from facefleet.observability.metrics_dir import use_private_dir\n"
        "private = use_private_dir('api')\n"
        "from facefleet.observability import metrics\n"
        "metrics.LEASE_EXPIRED.inc()\n"
        "print(private, os.environ['PROMETHEUS_MULTIPROC_DIR'], metrics.multiprocess())\n"
    )
    stale = tmp_path / f"api-{os.getpid()}"  # not this child's: left alone
    stale.mkdir()
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    private, env_dir, multiprocess = done.stdout.split()
    assert Path(private).parent == tmp_path and private == env_dir and multiprocess == "True"
    assert any(Path(private).glob("counter_*.db"))  # the child wrote its values there
    assert stale.is_dir()


def test_too_late_once_prometheus_client_is_imported(tmp_path):
    code = "import prometheus_client\nfrom facefleet.observability.metrics_dir import use_private_dir\nuse_private_dir('worker')\n"
    done = _run(code, None)
    assert done.returncode != 0 and "imported before its multiprocess directory was set" in done.stderr
