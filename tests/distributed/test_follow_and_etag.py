"""Status without polling: ``GET /v1/tasks/<id>`` and ``/v1/batches/<id>`` carry an ``ETag``
and answer ``304`` (no body) to ``If-None-Match`` while the view is unchanged, and another
tenant's id stays a 404 whatever it sends; ``facefleet status <task> --follow`` follows the
task's live events (SSE), not a poll per second, and ends at its final state."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import requests

from tests.harness.fleet import Operator
from tests.harness.net import free_port, http_ok, wait_for
from tests.harness.proxy import TapProxy
from tests.harness.tasks import JOB, clip
from tests.harness.webhooks import auth, get, submit_batch, submit_task


def _answers_304_once_settled(url: str, key: str) -> str:
    """The view's ETag, once asking again with it gives a 304 (a task's last writes, its
    usage and clean-up, may land just after it ended)."""
    for _ in range(20):
        etag = requests.get(url, headers=auth(key), timeout=10).headers["ETag"]
        again = requests.get(url, headers=auth(key) | {"If-None-Match": etag}, timeout=10)
        if again.status_code == 304:
            assert again.content == b"" and again.headers["ETag"] == etag
            return etag
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered 304")


def test_task_and_batch_views_answer_304_while_unchanged(hooks, operator, tmp_path):
    key = hooks["key"]
    task_id = submit_task(hooks, clip(tmp_path / "in.mp4"), JOB)
    url = f"{hooks['url']}/v1/tasks/{task_id}"
    seen: set[str] = set()

    def ended() -> bool:
        response = requests.get(url, headers=auth(key), timeout=10)
        seen.add(response.headers["ETag"])
        return response.json()["state"] in ("succeeded", "failed")

    wait_for(ended, 120, "the task's end", interval=0.2)
    assert len(seen) > 2  # the tag moved with the task
    stale = requests.get(url, headers=auth(key) | {"If-None-Match": '"stale"'}, timeout=10)
    assert stale.status_code == 200 and stale.json()["id"] == task_id

    # a succeeded task's view holds a fresh presigned URL each time: a cancelled one is still
    cancelled_id = submit_task(hooks, clip(tmp_path / "in.mp4"), JOB)
    cancel = requests.post(f"{hooks['url']}/v1/tasks/{cancelled_id}/cancel", headers=auth(key), timeout=10)
    assert cancel.status_code in (200, 202), cancel.text
    cancelled_url = f"{hooks['url']}/v1/tasks/{cancelled_id}"
    wait_for(lambda: get(hooks, f"/v1/tasks/{cancelled_id}")["state"] == "cancelled", 60, "the cancel")
    etag = _answers_304_once_settled(cancelled_url, key)

    other_key = operator.key(operator.tenant())
    stranger = requests.get(cancelled_url, headers=auth(other_key) | {"If-None-Match": etag}, timeout=10)
    assert stranger.status_code == 404  # another tenant's id, whatever it sends

    submitted = submit_batch(hooks, [clip(tmp_path / "one.mp4", frames=48)], JOB)
    assert submitted.status_code == 201, submitted.text
    batch_url = f"{hooks['url']}/v1/batches/{submitted.json()['id']}"
    wait_for(
        lambda: requests.get(batch_url, headers=auth(key), timeout=10).json()["state"] == "completed",
        120,
        "the batch's end",
        interval=0.5,
    )
    batch_etag = _answers_304_once_settled(batch_url, key)
    foreign = requests.get(batch_url, headers=auth(other_key) | {"If-None-Match": batch_etag}, timeout=10)
    assert foreign.status_code == 404


def test_status_follow_reads_the_live_events_not_a_poll_per_second(hooks, operator, tmp_path):
    tap = TapProxy(urlsplit(hooks["url"]).port or 80)
    try:
        task_id = submit_task(hooks, clip(tmp_path / "long.mp4", frames=240), JOB)
        client = Operator(
            {
                **operator.env,
                "FACEFLEET_API_URL": f"http://127.0.0.1:{tap.port}",
                "FACEFLEET_API_KEY": hooks["key"],
            }
        )
        followed = client.run("status", task_id, "--follow", "--json")
        assert followed.returncode == 0, followed.stderr
        final = json.loads(followed.stdout)
        assert final["state"] == "succeeded" and final["id"] == task_id
        paths = [r.path for r in tap.requests if r.method == "GET"]
        assert f"/v1/tasks/{task_id}/events" in paths, paths
        polls = [p for p in paths if p == f"/v1/tasks/{task_id}"]
        took = get(hooks, f"/v1/tasks/{task_id}")
        print(f"followed a task of {took['frames_total']} frames with {len(polls)} status reads: {paths}")
        assert len(polls) <= 3, paths  # the batch probe aside: the view before and after the stream
    finally:
        tap.down()


def test_followers_take_no_read_thread(hooks, tmp_path):
    """An API with one read thread and 20 live followers of a running task: status and
    health still answer at once (each follower holds a thread of the stream pool)."""
    fleet = hooks["fleet"]
    port = free_port()
    proc = fleet.start(
        "api-streams",
        ["api", "--port", str(port), "--workers", "1", "--read-threads", "1"],
        "Booting worker",
        env={"FACEFLEET_AUTH": "on"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/healthz"), 30, "the API")
    streams: list[requests.Response] = []
    try:
        task_id = submit_task(hooks, clip(tmp_path / "long.mp4", frames=240), JOB)
        for _ in range(20):
            streams.append(
                requests.get(
                    f"{url}/v1/tasks/{task_id}/events", headers=auth(hooks["key"]), stream=True, timeout=60
                )
            )
        assert all(s.status_code == 200 for s in streams)
        started = time.monotonic()
        status = requests.get(f"{url}/v1/tasks/{task_id}", headers=auth(hooks["key"]), timeout=10)
        health = requests.get(f"{url}/healthz", timeout=10)
        took = time.monotonic() - started
        assert status.status_code == 200 and health.status_code == 200
        assert status.json()["state"] not in ("succeeded", "failed")  # the followers were still following
        assert took < 2.0, took
    finally:
        for stream in streams:
            stream.close()
        proc.stop()
