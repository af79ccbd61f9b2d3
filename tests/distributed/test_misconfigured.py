"""A permanent misconfiguration of the bucket (it does not exist; no credentials reach it) is
named as such, with its fix, wherever it is met: the API's 503 (no Retry-After: trying
again does not help), ``/readyz``, a worker's start-up (it stops at once) and
``facefleet doctor`` all say the same words. So is a database that does not exist, or has no
schema, at a worker's start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.harness.cli import REPO
from tests.harness.tasks import clip

MISSING_BUCKET = f"ff-missing-{uuid.uuid4().hex[:8]}"


def no_credentials(tmp_path: Path) -> dict[str, str]:
    """No AWS credentials anywhere botocore looks: the variables empty (botocore takes an
    empty one as unset), the shared files empty, no instance metadata."""
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    return {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


CASES = {
    "missing bucket": (
        lambda _tmp: {"FACEFLEET_S3_BUCKET": MISSING_BUCKET},
        f"the bucket {MISSING_BUCKET} does not exist: create it with `facefleet doctor --fix`",
    ),
    "no credentials": (
        no_credentials,
        "no credentials for object storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
}


def _run(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_permanent_misconfiguration_is_named_with_its_fix(case, fleet, env, tmp_path):
    make_env, words = CASES[case]
    wrong = make_env(tmp_path)
    with fleet.api_deployment(f"api-{case.replace(' ', '-')}", wrong) as url:
        with clip(tmp_path / "in.mp4").open("rb") as video:
            answer = requests.post(
                f"{url}/v1/tasks",
                files={"target": ("in.mp4", video)},
                data={"options": '{"processors": "none"}'},
                timeout=60,
            )
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["type"].endswith("/misconfigured") and words in body["detail"], body
        assert "try again" not in body["detail"] and "Retry-After" not in answer.headers

        ready = requests.get(f"{url}/readyz", params={"fleet": "false"}, timeout=30)
        assert ready.status_code == 503, ready.text
        assert words in ready.json()["checks"]["bucket"], ready.text

    worker_env = {**env, **wrong, "FACEFLEET_WORK_DIR": str(tmp_path / "work")}
    worker = _run(worker_env, "worker", "--queues", "planning,chunks,stitching")
    assert worker.returncode == 2, worker.stdout + worker.stderr
    assert words in worker.stderr, worker.stderr
    assert "ready." not in worker.stdout + worker.stderr

    doctor = _run(worker_env, "doctor", "--mode", "service", "--processors", "none")
    assert doctor.returncode == 1, doctor.stdout
    lines = doctor.stdout.splitlines()
    line = next(n for n, text in enumerate(lines) if text.split()[:2] == ["FAIL", "bucket"])
    said = " ".join(lines[line].split()[2:]) + ": " + lines[line + 1].split("fix: ", 1)[1]
    assert words in said, doctor.stdout


@pytest.mark.parametrize("case", ["does not exist", "no schema"])
def test_a_worker_against_a_database_not_ready_stops_saying_so(case, env, tmp_path):
    """The worker stops at once (it would otherwise wait for ever, as for an outage), with
    ``facefleet doctor``'s words and fix."""
    from sqlalchemy.engine import make_url

    name = f"ff_unready_{uuid.uuid4().hex[:8]}"
    if case == "no schema":
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    try:
        url = make_url(env["FACEFLEET_DATABASE_URL"]).set(database=name).render_as_string(hide_password=False)
        worker_env = {**env, "FACEFLEET_DATABASE_URL": url, "FACEFLEET_WORK_DIR": str(tmp_path / "work")}
        worker = _run(worker_env, "worker", "--queues", "planning,chunks,stitching", timeout=60)
        assert worker.returncode == 2, worker.stdout + worker.stderr
        fix = (
            "createdb the database, then facefleet migrate"
            if case == "does not exist"
            else "facefleet migrate"
        )
        assert "facefleet worker: database: " in worker.stderr and f"fix: {fix}" in worker.stderr, (
            worker.stderr
        )
        assert "ready." not in worker.stdout + worker.stderr
        doctor = _run(worker_env, "doctor", "--mode", "service", "--processors", "none")
        assert doctor.returncode == 1 and f"fix: {fix}" in doctor.stdout, doctor.stdout
    finally:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", name])
