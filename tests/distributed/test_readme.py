"""Every command block (```sh) of the README runs, in order, in one shell, as a newcomer
would type them: the first commands, their own video, the models, the kept jobs, the service
on one machine (local S3 by moto, the database, the bucket step, a key, the API and a worker
as written) down to a downloaded output, then the tenants' and the client's commands.

What differs from a newcomer's machine, and only so that the test shares nothing with other
runs: the database, bucket and ports get names of the test's own, Redis is the test's private
server, and the queues and Redis keys get a prefix (FACEFLEET_QUEUE_PREFIX and
FACEFLEET_REDIS_NAMESPACE). `make run` is its last step, `facefleet demo` (what it installs
is checked by ``test_make_run_installs_what_running_needs``), and `. .venv/bin/activate`
is this interpreter's bin folder put first on PATH."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import av
import pytest

from tests.harness.cli import REPO
from tests.harness.net import free_port

README = REPO / "README.md"


def command_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _own_names(
    script: str, *, database: str, bucket: str, s3_port: int, api_port: int, redis_url: str
) -> str:
    replacements = [
        ("make run ", "facefleet demo  # make run's last step: "),
        (". .venv/bin/activate ", "true  # the venv's bin is on PATH: "),
        ("-U postgres facefleet", f"-U postgres {database}"),
        ("@127.0.0.1/facefleet", f"@127.0.0.1/{database}"),
        ("FACEFLEET_S3_BUCKET=facefleet", f"FACEFLEET_S3_BUCKET={bucket}"),
        ("redis://127.0.0.1:6379/0", redis_url),
        ("9000", str(s3_port)),
        ("8000", str(api_port)),
    ]
    for old, new in replacements:
        assert old in script, f"the README no longer has {old!r}: update this test's names"
        script = script.replace(old, new)
    return script


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_command_block_of_the_readme_runs(tmp_path, redis_url):
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        pytest.skip("PostgreSQL is not reachable")
    blocks = command_blocks()
    assert len(blocks) >= 7, "the README's command blocks were not found"
    database, bucket = f"ff_readme_{uuid.uuid4().hex[:8]}", f"ff-readme-{uuid.uuid4().hex[:8]}"
    script = _own_names(
        "\n".join(blocks),
        database=database,
        bucket=bucket,
        s3_port=free_port(),
        api_port=free_port(),
        redis_url=redis_url,
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FACEFLEET_HOME": str(tmp_path / "home"),
        "FACEFLEET_WORK_DIR": str(tmp_path / "work"),
        "FACEFLEET_QUEUE_PREFIX": f"ffreadme-{bucket}-",
        "FACEFLEET_REDIS_NAMESPACE": f"ffreadme-{bucket}",
    }
    for name in ("FACEFLEET_DATABASE_URL", "FACEFLEET_API_KEY", "FACEFLEET_S3_BUCKET", "FACEFLEET_AUTH"):
        env.pop(name, None)
    (tmp_path / "readme.sh").write_text("set -euo pipefail\nset -x\n" + script)
    transcript = tmp_path / "readme.out"  # what the newcomer would have seen, as it comes
    with transcript.open("w") as out:
        shell = subprocess.Popen(
            ["bash", str(tmp_path / "readme.sh")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the API, the worker and moto it starts are ended with it
        )
    try:
        shell.wait(timeout=840)
    finally:
        output = transcript.read_text()
        with_logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in tmp_path.glob("*.log"))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", database])
    assert shell.returncode == 0, output[-6000:] + with_logs
    assert _frames(tmp_path / ".demo" / "output.mp4") == 200
    assert _frames(tmp_path / "blurred.mp4") == 200
    assert _frames(tmp_path / "boxes.mp4") == 50  # --trim-start 0 --trim-end 50
    assert _frames(tmp_path / "blurred-by-the-service.mp4") == 200, output[-3000:]
    assert "every check passed" in output and f"created bucket {bucket}" in output


def test_make_run_installs_what_running_needs():
    """`make run` installs the package without the dev extras and then runs the demo;
    `make test` adds them. (What make would do, not done: it would remake this venv.)"""
    planned = subprocess.run(
        ["make", "-n", "run", "VENV=/nonexistent/venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in planned.splitlines() if "pip install" in line]
    assert installs and all("[dev]" not in line for line in installs), installs
    assert "/nonexistent/venv/bin/facefleet demo" in planned
    assert any(line.startswith("echo") and "creating" in line for line in planned.splitlines())
    tested = subprocess.run(
        ["make", "-n", "test", "VENV=/nonexistent/venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert any("[dev]" in line for line in tested.splitlines() if "pip install" in line)
    assert "BrokenPipe" not in planned
