"""`facefleet doctor` against a service stack (PostgreSQL, Redis, the broker, S3 via moto)
whose bucket and one model are missing: it exits 1 naming both with their fix; after
`doctor --fix` (creates the bucket) and `facefleet models download` from the mirror, 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.harness.cli import REPO
from tests.harness.cli import shared_models as shared_models_folder


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def _failed(stdout: str) -> dict[str, str]:
    """Failed check -> its fix line."""
    lines = stdout.splitlines()
    return {
        line.split(None, 1)[1].split("  ")[0]: lines[i + 1].strip()
        for i, line in enumerate(lines)
        if line.startswith("  FAIL")
    }


def test_doctor_names_the_missing_bucket_and_model_and_passes_once_fixed(env, s3, disclosure, tmp_path):
    mirror = shared_models_folder()
    if not (mirror / "det_500m.onnx").is_file():
        pytest.skip(f"the real detector det_500m.onnx is missing from {mirror}")
    bucket = f"ff-doctor-{uuid.uuid4().hex[:8]}"
    stack = {
        **env,
        "FACEFLEET_S3_BUCKET": bucket,
        "FACEFLEET_WARM_MODELS": "det_500m",
        "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
        "FACEFLEET_MODEL_MIRRORS": mirror.resolve().as_uri(),  # a URL mirror: downloaded from
        "FACEFLEET_WORK_DIR": str(tmp_path / "work"),
    }
    sick = _doctor(stack, "doctor")
    assert sick.returncode == 1, sick.stdout + sick.stderr
    assert "(service mode)" in sick.stdout
    failed = _failed(sick.stdout)
    assert set(failed) == {"model det_500m", "bucket"}, sick.stdout
    assert "facefleet doctor --fix" in failed["bucket"]
    assert "facefleet models download det_500m" in failed["model det_500m"]
    for name in ("database", "redis", "broker"):
        assert f"ok    {name}" in sick.stdout, sick.stdout
    assert not disclosure.leaks(sick.stdout.replace(str(tmp_path), "")), sick.stdout

    fixed = _doctor(stack, "doctor", "--fix")
    assert fixed.returncode == 1 and set(_failed(fixed.stdout)) == {"model det_500m"}, fixed.stdout
    assert f"created bucket {bucket}" in fixed.stdout
    s3.client.head_bucket(Bucket=bucket)  # it is there for everyone, not only for the doctor

    fetched = _doctor(stack, "models", "download", "det_500m")
    assert fetched.returncode == 0, fetched.stderr
    well = _doctor(stack, "doctor", "--json")
    assert well.returncode == 0, well.stdout
    report = json.loads(well.stdout)
    assert report["ok"] and {c["status"] for c in report["checks"]} <= {"ok", "warn"}


def test_doctor_says_the_database_needs_migrating(env, pg_url, tmp_path):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(pg_url).set(database="postgres")
    name = f"ff_doctor_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        empty = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        result = _doctor(
            {**env, "FACEFLEET_DATABASE_URL": empty, "FACEFLEET_WORK_DIR": str(tmp_path)}, "doctor"
        )
        assert result.returncode == 1
        assert _failed(result.stdout).get("database") == "fix: facefleet migrate", result.stdout
        gone = make_url(pg_url).set(database=f"{name}_none").render_as_string(hide_password=False)
        result = _doctor(
            {**env, "FACEFLEET_DATABASE_URL": gone, "FACEFLEET_WORK_DIR": str(tmp_path)}, "doctor"
        )
        assert "createdb" in _failed(result.stdout).get("database", ""), result.stdout
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
