"""Flower on the same broker lists the workers; beyond loopback it needs authentication, and
what it shows of the tasks is the users' work (no housekeeping), by ids, never URLs or keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.harness.cli import REPO
from tests.harness.net import free_port, wait_for
from tests.harness.stack import REAPER_INTERVAL_S
from tests.harness.tasks import clip, submit, wait_state

USER, PASSWORD = "ops", "flower-pw-7d1c"
# (task id), or (task id, chunk index)
TASK_ARGS = re.compile(r"^\['[0-9a-f]{32}'(, \d+)?\]$")
USER_TASKS = {"facefleet.plan", "facefleet.chunk", "facefleet.stitch"}


def _workers(base: str, auth: tuple[str, str] | None = None) -> dict:
    try:
        response = requests.get(f"{base}/api/workers", params={"refresh": "true"}, auth=auth, timeout=10)
    except requests.RequestException:
        return {}
    return response.json() if response.ok else {}


def test_flower_lists_the_workers(fleet):
    fleet.ensure_workers()
    port = free_port()
    fleet.start("flower", ["flower", "--port", str(port)], "Visit me at")
    base = f"http://127.0.0.1:{port}"
    found = wait_for(
        lambda: [n for n in _workers(base) if n.endswith("@fftest")] or None, 60, "Flower to list a worker"
    )
    assert any(name in found for name in (f"{w.name}-{fleet.run_id}@fftest" for w in fleet.live_workers()))
    assert requests.get(f"{base}/workers", timeout=10).status_code == 200


def test_flower_beyond_loopback_refuses_to_start_without_authentication(env):
    plain = {k: v for k, v in os.environ.items() if "FLOWER" not in k}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "flower", "--address", "0.0.0.0", "--port", str(free_port())],
        env={**plain, **{k: v for k, v in env.items() if "FLOWER" not in k}},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        "without authentication" in result.stderr
        and "FACEFLEET_FLOWER_BASIC_AUTH=user:password" in result.stderr
    )


def test_flower_with_basic_auth_and_what_it_shows_of_tasks(api, fleet, env, tmp_path):
    port = free_port()
    flower = fleet.start(
        "flower-auth",
        ["flower", "--address", "0.0.0.0", "--port", str(port)],
        "Visit me at",
        env={"FACEFLEET_FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}", "FLOWER_UNAUTHENTICATED_API": ""},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert PASSWORD not in Path(f"/proc/{flower.pid}/cmdline").read_text()  # not shown by ps
        assert requests.get(f"{base}/api/workers", timeout=10).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=(USER, "wrong"), timeout=10).status_code == 401
        assert requests.get(f"{base}/workers", timeout=10).status_code == 401
        assert requests.get(f"{base}/healthcheck", timeout=10).status_code == 200  # for probes
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401  # behind the same auth
        assert requests.get(f"{base}/metrics", auth=(USER, "wrong"), timeout=10).status_code == 401
        scraped = requests.get(f"{base}/metrics", auth=(USER, PASSWORD), timeout=10)
        assert scraped.status_code == 200 and "flower_" in scraped.text
        found = wait_for(
            lambda: [n for n in _workers(base, (USER, PASSWORD)) if n.endswith("@fftest")] or None,
            60,
            "Flower to list the workers to the operator",
        )
        live = {f"{w.name}-{fleet.run_id}@fftest" for w in fleet.live_workers()}
        assert live & set(found), (live, found)

        task_id = submit(api, clip(tmp_path / "in.mp4"))
        assert wait_state(api, task_id, {"succeeded", "failed"})["state"] == "succeeded"

        def tasks_of_job() -> dict | None:
            shown = requests.get(f"{base}/api/tasks", auth=(USER, PASSWORD), timeout=10).json()
            names = {t["name"] for t in shown.values() if task_id in (t.get("args") or "")}
            return shown if names >= USER_TASKS else None

        wait_for(tasks_of_job, 30, "Flower to show the job's tasks", interval=0.5)
        # the reaper and the dispatcher run in every worker's fleet loop, not as tasks: several
        # of their passes later, the list holds the users' work only
        time.sleep(5 * REAPER_INTERVAL_S)
        shown = requests.get(f"{base}/api/tasks", auth=(USER, PASSWORD), timeout=10).json()
        names = {t["name"] for t in shown.values()} - {None}  # None: seen only after it was received
        assert names <= USER_TASKS, sorted(names)
        secrets = [v for k, v in env.items() if "SECRET" in k or "PASSWORD" in k] + [PASSWORD]
        for task in shown.values():
            if task.get("args") is None and task.get("kwargs") is None:
                continue  # Flower saw only a later event of it (it started mid-task): nothing shown
            args, kwargs = task.get("args") or "[]", task.get("kwargs") or "{}"
            assert TASK_ARGS.match(args) and kwargs == "{}", (task["name"], args, kwargs)
            assert not any(s in args for s in ["://", "X-Amz", "Signature", *secrets]), args
    finally:
        flower.stop()
