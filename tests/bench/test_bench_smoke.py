"""Every script in ``bench/`` runs its ``--smoke`` mode (a tiny input, one round) to the end,
so that a change elsewhere cannot break a bench unseen. A script that starts the test stack
skips where a service is missing (fails under CI=true), as the distributed tests do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.cli import REPO
from tests.harness.services import missing_services
from tests.harness.skips import unavailable

SCRIPTS = sorted(
    path.name for path in (REPO / "bench").glob("*.py") if 'if __name__ == "__main__":' in path.read_text()
)


def test_every_script_is_found():
    assert {"bench_video.py", "bench_distributed.py", "chaos.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_mode_runs_to_the_end(script: str, tmp_path: Path) -> None:
    source = (REPO / "bench" / script).read_text()
    assert "--smoke" in source, f"bench/{script} has no --smoke mode"
    if "tests.harness" in source and ("stack" in source or "postgres_database" in source):
        missing = missing_services()
        if missing:
            unavailable(", ".join(missing))
    args = ["--out", str(tmp_path)] if script == "bench_video.py" else []
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--smoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (
        f"bench/{script} --smoke failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    assert done.stdout.strip(), f"bench/{script} --smoke printed nothing"
