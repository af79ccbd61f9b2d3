"""Batches and signed webhooks, end to end: a real API (keys on), real workers delivering from
the outbox in PostgreSQL, and receivers on loopback that verify each signature with the
tenant's secret using the ``standardwebhooks`` library."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

from tests.harness.fleet import Operator
from tests.harness.net import wait_for
from tests.harness.receivers import Receiver
from tests.harness.tasks import JOB, clip, frame_indices
from tests.harness.webhooks import (
    HOOK_ENV,
    auth,
    deliveries,
    get,
    submit_batch,
    submit_task,
)

ENDED = {"succeeded", "failed", "cancelled"}


def test_a_batch_with_a_broken_file_its_webhooks_signed_and_its_tenant_alone(hooks, operator, tmp_path):
    receiver = Receiver(secrets=[hooks["secret"]])
    try:
        targets = [clip(tmp_path / f"clip{n}.mp4") for n in range(4)]
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(b"this is no video " * 500)
        targets.insert(2, broken)
        options = {
            **JOB,
            "webhook_url": receiver.url,
            "webhook_events": ["succeeded", "failed", "batch_completed"],
        }
        created = submit_batch(hooks, targets, options, key="batch-one")
        assert created.status_code == 201, created.text
        batch = created.json()
        assert len(batch["tasks"]) == 5
        assert [item["name"] for item in batch["items"]] == [p.name for p in targets]
        assert batch["items"][2]["error"] and all(
            i["error"] is None for i in batch["items"] if i["name"] != "broken.mp4"
        )

        again = submit_batch(hooks, targets, options, key="batch-one")  # the same Idempotency-Key
        assert again.status_code == 200 and again.json()["id"] == batch["id"]
        assert again.json()["tasks"] == batch["tasks"]

        other_key = operator.key(operator.tenant())
        for batch_id in (batch["id"], "0" * 32):  # another tenant's batch answers as an unknown one
            answer = requests.get(
                f"{hooks['url']}/v1/batches/{batch_id}", headers=auth(other_key), timeout=10
            )
            assert answer.status_code == 404 and answer.json()["type"].endswith("batch-not-found")

        done = wait_for(
            lambda: (b := get(hooks, f"/v1/batches/{batch['id']}"))["state"] == "completed" and b,
            180,
            "the batch",
        )
        assert done["counts"]["succeeded"] == 4 and done["counts"]["failed"] == 1, done["counts"]
        failed = [t for t in done["tasks"] if t["state"] == "failed"]
        assert failed[0]["target_name"] == "broken.mp4" and failed[0]["error"], failed
        assert done["progress"]["percent"] == 100.0
        assert batch["id"] in [b["id"] for b in get(hooks, "/v1/batches")["items"]]

        wait_for(
            lambda: any(r.payload["event"] == "batch_completed" for r in receiver.events()),
            60,
            "batch_completed",
        )
        received = receiver.events()
        assert all(r.verified_with == [hooks["secret"]] for r in received), "a signature did not verify"
        events = sorted(r.payload["event"] for r in received)
        assert events == ["batch_completed", "failed"] + ["succeeded"] * 4, events
        assert len({r.webhook_id for r in received}) == len(received)  # one delivery each, no retry needed
        by_task = {
            r.payload["data"]["id"]: r.payload["data"]["state"]
            for r in received
            if r.payload["event"] != "batch_completed"
        }
        assert by_task == {t["id"]: t["state"] for t in done["tasks"]}

        path = f"/v1/batches/{batch['id']}/webhooks"  # the last attempt is recorded after its answer

        def all_delivered() -> list[dict[str, Any]] | None:
            found = deliveries(hooks, path)
            return found if found and all(d["delivered_at"] for d in found) else None

        log = wait_for(all_delivered, 30, "the log")
        assert sorted(d["event"] for d in log) == events
        assert all(
            d["state"] == "delivered" and [a["status"] for a in d["attempts"]] == [200] for d in log
        ), log
    finally:
        receiver.stop()


def test_cancel_and_retry_of_a_batch(hooks, tmp_path):
    target = clip(tmp_path / "in.mp4")
    created = submit_batch(hooks, [target, target], JOB)
    batch_id = created.json()["id"]
    cancelled = requests.post(
        f"{hooks['url']}/v1/batches/{batch_id}/cancel", headers=auth(hooks["key"]), timeout=30
    )
    assert cancelled.status_code == 200 and cancelled.json()["counts"]["cancelled"] == 2, cancelled.text
    assert cancelled.json()["state"] == "completed"

    # items that fail (a deadline they cannot meet), then a retry: each is run again (a new budget)
    late = submit_batch(hooks, [target, target], {**JOB, "deadline_s": 0.2}).json()["id"]
    wait_for(lambda: get(hooks, f"/v1/batches/{late}")["counts"]["failed"] == 2, 60, "the items to fail")
    retried = requests.post(f"{hooks['url']}/v1/batches/{late}/retry", headers=auth(hooks["key"]), timeout=30)
    assert retried.status_code == 202, retried.text
    assert all(t["retries"] == 1 for t in get(hooks, f"/v1/batches/{late}")["tasks"])
    deleted = requests.delete(f"{hooks['url']}/v1/batches/{late}", headers=auth(hooks["key"]), timeout=30)
    assert deleted.status_code == 204
    assert (
        requests.get(f"{hooks['url']}/v1/batches/{late}", headers=auth(hooks["key"]), timeout=10).status_code
        == 404
    )


def test_a_failing_receiver_gets_the_event_on_the_third_attempt_and_both_secrets_sign_after_rotation(
    hooks, operator, tmp_path
):
    receiver = Receiver(secrets=[hooks["secret"]], fail_first=2)
    try:
        # one event, so that the receiver's first three requests are its attempts (progress at
        # most once per interval: tests/distributed/test_webhook_timing.py)
        options = {**JOB, "webhook_url": receiver.url, "webhook_events": ["succeeded"]}
        task_id = submit_task(hooks, clip(tmp_path / "in.mp4"), options)
        path = f"/v1/tasks/{task_id}/webhooks"

        def delivered() -> dict[str, Any] | None:
            found = [d for d in deliveries(hooks, path) if d["event"] == "succeeded"]
            return found[0] if found and found[0]["state"] == "delivered" else None

        delivery = wait_for(delivered, 120, "the succeeded event delivered")
        statuses = [a["status"] for a in delivery["attempts"]]
        assert statuses[-1] == 200 and statuses.count(200) == 1
        first = receiver.events()[:3]
        assert [r.status for r in first] == [500, 500, 200] and len({r.webhook_id for r in first}) == 1
        assert all(a["latency_ms"] >= 0 and a["at"] for a in delivery["attempts"])
        rotated = operator.run("tenants", "rotate-secret", hooks["tenant"])
        assert rotated.returncode == 0, rotated.stderr
        new_secret = rotated.stdout.strip().splitlines()[-1]
        assert new_secret.startswith("whsec_") and new_secret != hooks["secret"]
        receiver.secrets.append(new_secret)
        before = len(receiver.events())
        replayed = requests.post(
            f"{hooks['url']}/v1/webhooks/{delivery['id']}/replay", headers=auth(hooks["key"]), timeout=10
        )
        assert replayed.status_code == 202, replayed.text
        wait_for(
            lambda: len(receiver.events(acknowledged=True)) > 1 and len(receiver.events()) > before,
            30,
            "the replay",
        )
        again = receiver.events()[-1]
        assert again.webhook_id == delivery["id"]  # the same id: a receiver drops what it has seen
        assert again.headers["webhook-signature"].count("v1,") == 2
        assert sorted(again.verified_with) == sorted([hooks["secret"], new_secret])
    finally:
        receiver.stop()


def test_a_refused_webhook_url_is_422_at_submission_and_refused_again_at_delivery(hooks, fleet, tmp_path):
    target = clip(tmp_path / "in.mp4")
    refused = requests.post(  # the fleet's own API opens no private address
        f"{fleet.api_url}/v1/tasks",
        files=[
            ("options", (None, json.dumps({**JOB, "webhook_url": "http://127.0.0.1:9/hook"}))),
            ("target", ("in.mp4", target.read_bytes())),
        ],
        timeout=30,
    )
    assert refused.status_code == 422 and "webhook_url" in refused.json()["detail"], refused.text

    elsewhere = Receiver(host="127.0.0.2")  # accepted by this API, refused by the workers' guard
    try:
        task_id = submit_task(
            hooks, target, {**JOB, "webhook_url": elsewhere.url, "webhook_events": ["succeeded"]}
        )
        path = f"/v1/tasks/{task_id}/webhooks"

        def first_attempt() -> dict[str, Any] | None:
            found = deliveries(hooks, path)
            return found[0]["attempts"][0] if found and found[0]["attempts"] else None

        attempt = wait_for(first_attempt, 120, "an attempt")
        assert attempt["status"] is None and "loopback" in attempt["error"], attempt
        assert not elsewhere.events()  # nothing reached the refused address
    finally:
        elsewhere.stop()


def test_a_worker_killed_mid_delivery_still_delivers_each_event_once_per_id(hooks, tmp_path):
    fleet = hooks["fleet"]
    for worker in fleet.live_workers()[1:]:  # one deliverer: the one killed
        worker.stop()
    receiver = Receiver(secrets=[hooks["secret"]], hold=threading.Event())
    try:
        options = {**JOB, "webhook_url": receiver.url, "webhook_events": ["started", "succeeded"]}
        task_id = submit_task(hooks, clip(tmp_path / "in.mp4"), options)
        assert receiver.arrived.wait(60), "no delivery began"
        fleet.live_workers()[0].kill()  # mid-delivery: the receiver holds the request
        for _ in range(2):
            fleet.start_worker(extra_env=HOOK_ENV, wait=False)
        for worker in fleet.live_workers():
            worker.wait_for_log("ready.")
        path = f"/v1/tasks/{task_id}/webhooks"
        wait_for(
            lambda: len(d := deliveries(hooks, path)) == 2 and all(x["state"] == "delivered" for x in d),
            120,
            "both events delivered",
        )
        ids = {d["id"] for d in deliveries(hooks, path)}
        acknowledged = [r.webhook_id for r in receiver.events(acknowledged=True)]
        assert sorted(acknowledged) == sorted(ids)  # each event acknowledged exactly once per id
        first = receiver.events()[0]
        assert first.status == 0 and first.webhook_id in ids  # the one cut off was sent again
    finally:
        receiver.stop()


def test_sse_follower_sees_every_state_in_order_and_the_stream_ends(hooks, tmp_path):
    task_id = submit_task(hooks, clip(tmp_path / "in.mp4"), JOB)
    states: list[str] = []
    began = time.monotonic()
    with requests.get(
        f"{hooks['url']}/v1/tasks/{task_id}/events", headers=auth(hooks["key"]), stream=True, timeout=120
    ) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(
            "text/event-stream"
        )
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["event"] == "state" and (not states or states[-1] != event["state"]):
                    states.append(event["state"])
    assert time.monotonic() - began < 120
    lifecycle = ["queued", "planning", "running", "stitching", "succeeded"]
    assert states[-1] == "succeeded" and states == [s for s in lifecycle if s in states], states
    assert {"planning", "running", "stitching"} <= set(states), states


def test_cli_submits_a_folder_as_a_batch_and_downloads_one_output_per_item(hooks, operator, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    names = ["alpha.mp4", "beta.mp4", "gamma.mp4"]
    for frames, name in zip((48, 72, 96), names, strict=True):
        clip(folder / name, frames=frames)
    client = Operator({**operator.env, "FACEFLEET_API_URL": hooks["url"], "FACEFLEET_API_KEY": hooks["key"]})
    submitted = client.run("submit", str(folder), "--options", json.dumps(JOB), "--follow")
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip().splitlines()[0]
    assert "batch completed" in submitted.stdout and "3 succeeded" in submitted.stdout, submitted.stdout
    assert "batch" in submitted.stderr  # the overall bar

    shown = client.run("status", batch_id)
    assert shown.returncode == 0 and all(name in shown.stdout for name in names), shown.stdout

    out = tmp_path / "out"
    downloaded = client.run("download", batch_id, "-o", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:  # every input frame, once, in order
        assert frame_indices(out / name) == frame_indices(folder / name)
