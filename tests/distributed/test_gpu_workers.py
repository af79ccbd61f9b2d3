"""``facefleet worker --gpus``: one supervised worker per GPU, each pinned to its device.

On this CPU host the GPUs are a fake list (FACEFLEET_TEST_FAKE_GPUS); the children are real
workers over the real stack, and what a test checks is what an operator would: each child's
CUDA_VISIBLE_DEVICES, its announcement to the dispatcher, a restart after a kill, and every
chunk handed back on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from facefleet.records.db import Chunk
from tests.harness.cli import REPO
from tests.harness.fleet import Proc
from tests.harness.net import free_port, wait_for
from tests.harness.tasks import FRAMES, JOB, clip, submit, wait_state

ONE_CHUNK = {**JOB, "chunk_frames": FRAMES}
SEGMENTS = FRAMES // JOB["segment_frames"]
HANDOVER_S = 10


def _started(proc: Proc) -> dict[str, list[int]]:
    """GPU -> the pids the supervisor started for it, in order, from its log lines."""
    found: dict[str, list[int]] = {}
    for line in proc.text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "child_pid" in record and "gpu" in record:
            found.setdefault(str(record["gpu"]), []).append(int(record["child_pid"]))
    return found


def _device_of(pid: int) -> str | None:
    """The CUDA_VISIBLE_DEVICES a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    values = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    found = values.get(b"CUDA_VISIBLE_DEVICES")
    return found.decode() if found is not None else None


def _announced(services) -> set[str]:  # type: ignore[no-untyped-def]
    state = services.state
    now = time.time()
    names = state.redis.zrangebyscore(state.keys.marker("workers"), now, "+inf")
    return {n.decode() if isinstance(n, bytes) else n for n in names}


def _supervisor(fleet, name: str, gpus: str, fake: str, pause: float = 0.3) -> Proc:  # type: ignore[no-untyped-def]
    args = ["worker", "--gpus", gpus, "--pool", "solo", "--name", f"{name}-{fleet.run_id}@fftest"]
    args += ["--segment-pause", str(pause), "--metrics-port", str(free_port())]
    env = {**fleet._work_env(name), "FACEFLEET_TEST_FAKE_GPUS": fake}
    proc = Proc(name, args, env, fleet.root / f"{name}.log")
    fleet.others.append(proc)
    return proc


def _holder_pid(services, task_id: str) -> int | None:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        held = session.scalar(select(Chunk.worker).where(Chunk.task_id == task_id, Chunk.index == 0))
    return int(held.rsplit(":", 1)[1]) if held else None


def _chunk(services, task_id: str) -> Chunk:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        chunk = session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == 0))
        assert chunk is not None
        return chunk


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has NVIDIA's tools")
def test_gpus_on_a_host_without_gpus_says_what_is_missing_and_exits(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_TEST_")}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--gpus", "all"],
        cwd=REPO,
        env={**env, "FACEFLEET_WORK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert time.monotonic() - began < 15
    assert "no NVIDIA GPU found" in done.stderr and "nvidia-smi" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_gpu_that_is_not_there_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--gpus", "0,5"],
        cwd=REPO,
        env={**os.environ, "FACEFLEET_TEST_FAKE_GPUS": "0,1", "FACEFLEET_WORK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "no GPU 5 on this host (it has 0, 1)" in done.stderr, done.stderr


def test_one_worker_per_gpu_pinned_and_restarted_when_killed(fleet, services):
    proc = _supervisor(fleet, "gpus-a", "1,3", fake="0,1,2,3")
    try:
        base = f"gpus-a-{fleet.run_id}@fftest"
        wait_for(lambda: {f"{base}-gpu1", f"{base}-gpu3"} <= _announced(services), 90, "both GPUs' workers")
        started = _started(proc)
        assert sorted(started) == ["1", "3"], started  # one child per GPU asked for, no other
        assert {gpu: _device_of(pids[-1]) for gpu, pids in started.items()} == {"1": "1", "3": "3"}

        victim = started["1"][-1]
        os.kill(victim, signal.SIGKILL)  # an OOM kill, a driver fault
        wait_for(lambda: len(_started(proc).get("1", [])) == 2, 30, "GPU 1's worker to be started again")
        again = _started(proc)["1"][-1]
        assert again != victim and _device_of(again) == "1"
        assert _started(proc)["3"] == started["3"]  # the other GPU's worker untouched
        # the new worker announces itself again, under the same name
        services.state.withdraw_worker(f"{base}-gpu1")
        wait_for(lambda: f"{base}-gpu1" in _announced(services), 90, "the restarted worker's announcement")
    finally:
        proc.stop()
    assert not proc.alive()


def test_sigterm_reaches_every_gpu_worker_and_each_hands_its_chunk_back(api, fleet, services, tmp_path):
    for worker in fleet.live_workers():
        worker.stop()
    proc = _supervisor(fleet, "gpus-b", "all", fake="0,1", pause=1.0)
    base = f"gpus-b-{fleet.run_id}@fftest"
    wait_for(lambda: {f"{base}-gpu0", f"{base}-gpu1"} <= _announced(services), 90, "both GPUs' workers")
    tasks = [submit(api, clip(tmp_path / f"in{i}.mp4"), ONE_CHUNK) for i in range(2)]

    children = {pids[-1] for pids in _started(proc).values()}
    assert len(children) == 2

    def both_held() -> bool:  # a chunk's holder is "host:pid" (the solo pool: the child itself)
        holders = {_holder_pid(services, t) for t in tasks}
        return holders == children and all(services.state.checkpoints.saved(t).get(0, 0) >= 1 for t in tasks)

    wait_for(both_held, 90, "each GPU's worker to hold one chunk")
    holders = {t: _chunk(services, t).worker for t in tasks}
    os.kill(proc.pid, signal.SIGTERM)  # to the supervisor only, as Kubernetes sends it
    stored_at_signal = [services.state.checkpoints.saved(t).get(0, 0) for t in tasks]
    assert all(done < SEGMENTS - 2 for done in stored_at_signal), stored_at_signal

    def handed_back() -> bool:
        chunks = [_chunk(services, t) for t in tasks]
        return all(c.state.value != "running" or c.worker != holders[c.task_id] for c in chunks)

    wait_for(handed_back, HANDOVER_S, "both chunks to leave the stopping GPU workers")
    assert proc.popen.wait(60) == 0, proc.text()[-3000:]
    assert proc.text().count("handed-back") >= 2, proc.text()[-3000:]
    fleet.ensure_workers()  # the chunks go on elsewhere, from where they were handed back
    for task_id in tasks:
        assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"
        chunk = _chunk(services, task_id)
        assert chunk.attempts == 1 and chunk.lost == 0, (chunk.attempts, chunk.lost)


def test_readyz_says_which_provider_took_each_warmed_model_and_the_codecs(api, fleet, tmp_path):
    from tests.harness.cli import shared_models as shared_models_folder

    models = shared_models_folder()
    if not (models / "det_500m.onnx").is_file():
        pytest.skip(f"the real detector is missing from {models}")
    worker = fleet.start_worker(
        extra_env={
            "FACEFLEET_WARM_MODELS": "det_500m",
            "FACEFLEET_MODEL_MIRRORS": str(models),
            "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
            "FACEFLEET_PROVIDERS": "auto",
            "FACEFLEET_HWACCEL": "auto",
        }
    )
    node = f"{worker.name}-{fleet.run_id}@fftest"

    def reported() -> dict | None:  # type: ignore[type-arg]
        found = requests.get(f"{api}/readyz", timeout=10).json().get("providers", {})
        return found.get(node)

    # on this CPU host "auto" finds neither TensorRT nor CUDA, nor NVDEC: the CPU took them, and says so
    assert wait_for(reported, 60, "the worker's providers in /readyz") == {
        "det_500m": "CPUExecutionProvider",
        "video_decoders": "cpu",
        "video_encoders": "cpu",
    }
    assert "det_500m on CPUExecutionProvider" in worker.text()
    assert "video codecs (--hwaccel auto): CPU codecs" in worker.text()
    worker.stop()
