"""Readiness: a worker says it is ready (its probe, ``facefleet worker --check``, passes and
``/readyz`` counts it) only once its models are loaded and warmed up; ``/readyz`` fails
while a queue with work has no ready worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.harness.cli import REPO, shared_models
from tests.harness.net import wait_for
from tests.harness.tasks import clip, submit, wait_state

MODEL = "det_500m"


@contextmanager
def gated_mirror(folder: Path, gate: threading.Event) -> Iterator[str]:
    """An HTTP model mirror that answers only once ``gate`` is set (a slow download)."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            gate.wait(120)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def check(env: dict[str, str], work_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--check", *flags],
        env={**env, "FACEFLEET_WORK_DIR": str(work_dir)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def ready_workers(api: str) -> dict[str, int]:
    body: dict[str, int] = requests.get(f"{api}/readyz", timeout=10).json()["workers"]
    return body


def ready_for_chunks(api: str) -> set[str]:
    """The nodes /readyz names as ready for chunks (their providers), whatever other tests'
    workers do meanwhile (a count would move with them)."""
    return set(requests.get(f"{api}/readyz", timeout=10).json()["providers"])


@pytest.fixture
def mirror_folder(tmp_path: Path) -> Path:
    source = shared_models() / f"{MODEL}.onnx"
    if not source.is_file():
        pytest.skip(f"the real detector {source} is missing")
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(source, folder)
    return folder


def test_worker_check_fails_until_its_models_are_loaded(api, fleet, env, mirror_folder, tmp_path):
    gate = threading.Event()
    with gated_mirror(mirror_folder, gate) as url:
        worker = fleet.start_worker(
            wait=False,
            extra_env={
                "FACEFLEET_WARM_MODELS": MODEL,
                "FACEFLEET_MODEL_MIRRORS": url,
                "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
            },
        )
        work_dir = fleet.work_dir(worker)
        node = f"{worker.name}-{fleet.run_id}@fftest"
        probe_env = {**os.environ, **env}
        try:
            # up and reporting, its model still downloading: the probe fails and says why
            waiting = wait_for(
                lambda: (r := check(probe_env, work_dir)).returncode == 1 and "loading" in r.stderr and r,
                60,
                "the worker to report that it is loading its models",
                interval=0.5,
            )
            assert MODEL in waiting.stderr, waiting.stderr
            alive = check(probe_env, work_dir, "--alive")  # the liveness probe: up, if not ready
            assert alive.returncode == 0 and "not ready" in alive.stdout, alive
            assert not (tmp_path / "models" / f"{MODEL}.onnx").exists()
            assert node not in ready_for_chunks(api)  # not counted by the fleet either

            gate.set()  # the download completes; the model is verified, loaded and run once
            wait_for(lambda: check(probe_env, work_dir).returncode == 0, 60, "the probe to pass", 0.5)
            done = check(probe_env, work_dir)
            assert "is ready" in done.stdout, done
            assert (tmp_path / "models" / f"{MODEL}.onnx").is_file()
            assert "models loaded and warmed up: det_500m" in worker.text()
            wait_for(lambda: node in ready_for_chunks(api), 10, "/readyz to count it")
        finally:
            worker.stop()
    gone = check(probe_env, work_dir)
    assert gone.returncode == 1 and "no worker has reported" in gone.stderr, gone
    assert node not in ready_for_chunks(api)


def test_check_without_a_worker_fails_with_a_message(env, tmp_path):
    result = check({**os.environ, **env}, tmp_path / "empty")
    assert result.returncode == 1
    assert "no worker has reported" in result.stderr and "FACEFLEET_WORK_DIR" in result.stderr


def test_readyz_fails_while_a_queue_with_work_has_no_ready_worker(api, fleet, tmp_path):
    ready = requests.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["fleet"] == "ok" and all(body["workers"][q] >= 1 for q in ("planning", "chunks", "stitching"))

    for worker in fleet.live_workers():
        worker.stop()
    assert ready_workers(api) == {"planning": 0, "chunks": 0, "stitching": 0}
    assert requests.get(f"{api}/readyz", timeout=10).status_code == 200  # no work: nothing missing

    task_id = submit(api, clip(tmp_path / "in.mp4"))
    missing = requests.get(f"{api}/readyz", timeout=10)
    assert missing.status_code == 503, missing.text
    body = missing.json()
    assert body["work"]["planning"] and body["fleet"] == "no ready worker for planning", body
    assert body["checks"] == {"database": "ok", "broker": "ok", "bucket": "ok"}
    # the API itself is fine: a load balancer's probe asks about it alone
    alone = requests.get(f"{api}/readyz", params={"fleet": "false"}, timeout=10)
    assert alone.status_code == 200 and alone.json()["fleet"] == "not checked", alone.text

    fleet.ensure_workers()
    assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"
    assert requests.get(f"{api}/readyz", timeout=10).status_code == 200


def test_a_worker_whose_models_fail_stays_unready_and_takes_no_chunks(api, fleet, env, services, tmp_path):
    """A missing model must not cost real chunks their attempts: the worker says why it is not
    ready and stops taking chunks; planning and stitching it still does."""
    from sqlalchemy import select

    from facefleet.records.db import Chunk

    for worker in fleet.live_workers():
        worker.stop()
    broken = fleet.start_worker(extra_env={"FACEFLEET_WARM_MODELS": "no_such_model"})
    probe_env = {**os.environ, **env}
    failed = wait_for(
        lambda: (
            (r := check(probe_env, fleet.work_dir(broken))).returncode == 1
            and "warm-up failed" in r.stderr
            and r
        ),
        30,
        "the probe to show the failed warm-up",
        interval=0.5,
    )
    assert "unknown model 'no_such_model'" in failed.stderr, failed.stderr
    wait_for(lambda: "takes no chunks" in broken.text(), 30, "the worker to stop taking chunks")

    task_id = submit(api, clip(tmp_path / "in.mp4"))
    assert wait_state(api, task_id, {"running", "failed"}, timeout=30)["state"] == "running"  # planned

    def chunks() -> list[Chunk]:
        with services.sessions() as session:
            return list(session.scalars(select(Chunk).where(Chunk.task_id == task_id)))

    time.sleep(3)  # time enough to take a chunk, had it still listened
    assert all(c.state.value == "queued" and c.attempts == 0 for c in chunks()), chunks()
    body = requests.get(f"{api}/readyz", timeout=10).json()
    assert body["fleet"] == "no ready worker for chunks" and body["workers"]["planning"] == 1, body

    broken.stop()
    fleet.ensure_workers()
    assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"
    assert all(c.attempts == 1 for c in chunks())


def _post(api: str, target: Path, options: dict[str, object]) -> requests.Response:
    with target.open("rb") as video:
        return requests.post(
            f"{api}/v1/tasks",
            files={"target": ("in.mp4", video)},
            data={"options": json.dumps(options)},
            timeout=60,
        )


def test_a_task_whose_models_no_ready_worker_has_is_refused(api, fleet, mirror_folder, tmp_path):
    """Workers report the models present and verified on their host with their slots; a task
    needing one that none has is a 422 naming it and the fix, not a task failing on every
    worker; one whose models are there is accepted."""
    yunet = shared_models() / "face_detection_yunet_2026may.onnx"  # the anonymiser's gate's
    if not yunet.is_file():
        pytest.skip(f"the real detector {yunet} is missing")
    shutil.copy(yunet, mirror_folder)  # the mirror: det_500m and yunet, no det_10g
    only = fleet.only_worker(
        {"FACEFLEET_MODEL_MIRRORS": str(mirror_folder), "FACEFLEET_MODEL_DIR": str(tmp_path / "models")}
    )
    wait_for(lambda: ready_workers(api)["chunks"] == 1, 30, "/readyz to count the one worker")
    target = clip(tmp_path / "in.mp4")

    refused = _post(api, target, {"processors": "face_anonymizer", "face_detector": "det_10g"})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["type"].endswith("/models-missing") and body["missing_models"] == ["det_10g"], body
    assert "facefleet models download det_10g" in body["detail"] and "on the workers" in body["detail"]
    assert "Retry-After" not in refused.headers

    accepted = _post(api, target, {"processors": "face_anonymizer", "face_detector": MODEL})
    assert accepted.status_code == 201, accepted.text
    assert wait_state(api, accepted.json()["id"], {"succeeded", "failed"})["state"] == "succeeded"
    assert only.alive()
