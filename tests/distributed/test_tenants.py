"""Tenants and keys, tried as an attacker and as an operator would: an API with keys (two
gunicorn processes) over the fleet's database, broker, bucket and workers; tenants and
keys made with the `facefleet tenants` and `facefleet keys` commands."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cli.commands.api_calls import download_output, submit_task
from tests.harness.fleet import Operator
from tests.harness.net import wait_for
from tests.harness.tasks import JOB, bucket_keys, clip

DONE = {"succeeded", "failed", "cancelled"}
ACTIVE = {"planning", "running", "stitching"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(api: str, key: str, path, options=None) -> requests.Response:  # type: ignore[no-untyped-def]
    return requests.post(
        f"{api}/v1/tasks",
        files={"target": ("in.mp4", path.read_bytes())},
        data={"options": json.dumps(options or JOB)},
        headers=_auth(key),
        timeout=60,
    )


def _state(api: str, key: str, task_id: str) -> str:
    response = requests.get(f"{api}/v1/tasks/{task_id}", headers=_auth(key), timeout=10)
    response.raise_for_status()
    return str(response.json()["state"])


def _wait(api: str, key: str, task_id: str, states: set[str], timeout: float = 90) -> str:
    return str(
        wait_for(lambda: (s := _state(api, key, task_id)) in states and s, timeout, f"{task_id} in {states}")
    )


def test_a_key_is_required_and_checked(keyed_api, operator, api):
    tenant = operator.tenant()
    key = operator.key(tenant, "--name", "ci")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        _auth("ffk_aaaaaaaaaaaa_" + "x" * 43),
        _auth("nonsense"),
    ):
        response = requests.get(f"{keyed_api}/v1/tasks", headers=headers, timeout=10)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{keyed_api}/v1/tasks", headers=_auth(key), timeout=10).status_code == 200
    for open_path in ("/healthz", "/metrics"):
        assert requests.get(f"{keyed_api}{open_path}", timeout=10).status_code == 200

    listed = operator.run("keys", "list", "--tenant", tenant)
    assert listed.returncode == 0 and "ci" in listed.stdout and key not in listed.stdout
    key_id = key.split("_")[1]
    revoked = operator.run("keys", "revoke", key[:20])
    assert revoked.returncode == 0 and key_id in revoked.stdout, revoked.stderr
    response = requests.get(f"{keyed_api}/v1/tasks", headers=_auth(key), timeout=10)
    assert response.status_code == 401  # at the next request


def test_tenants_see_only_their_own_tasks(keyed_api, operator, s3, tmp_path):
    alice, bob = operator.tenant(), operator.tenant()
    alice_key, bob_key = operator.key(alice), operator.key(bob)
    admin_key = operator.key(bob, "--admin")
    created = _submit(keyed_api, alice_key, clip(tmp_path / "in.mp4"))
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert _wait(keyed_api, alice_key, task_id, DONE) == "succeeded"

    unknown = uuid.uuid4().hex
    for method, path in (
        ("GET", "/v1/tasks/{}"),
        ("POST", "/v1/tasks/{}/cancel"),
        ("POST", "/v1/tasks/{}/retry"),
        ("DELETE", "/v1/tasks/{}"),
    ):
        theirs = requests.request(
            method, f"{keyed_api}{path.format(task_id)}", headers=_auth(bob_key), timeout=10
        )
        nobody = requests.request(
            method, f"{keyed_api}{path.format(unknown)}", headers=_auth(bob_key), timeout=10
        )
        assert theirs.status_code == nobody.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["type"] == nobody.json()["type"]
        assert theirs.json()["detail"].replace(task_id, unknown) == nobody.json()["detail"]
    with pytest.raises(Exception, match="404"):
        download_output(keyed_api, task_id, tmp_path / "stolen.mp4", bob_key)
    listing = requests.get(f"{keyed_api}/v1/tasks", headers=_auth(bob_key), timeout=10).json()["items"]
    assert task_id not in {t["id"] for t in listing}

    # the owner downloads; the admin sees every tenant
    out = download_output(keyed_api, task_id, tmp_path / "out.mp4", alice_key)
    assert out.stat().st_size > 0
    assert _state(keyed_api, admin_key, task_id) == "succeeded"
    everyone = requests.get(
        f"{keyed_api}/v1/tasks", headers=_auth(admin_key), params={"tenant": alice}, timeout=10
    )
    assert task_id in {t["id"] for t in everyone.json()["items"]}
    # its objects live under the tenant's prefix, and the link expires
    assert {k for k in bucket_keys(s3, f"tenants/{alice}/tasks/{task_id}/")}
    assert not bucket_keys(s3, f"tasks/{task_id}/")
    url = requests.get(f"{keyed_api}/v1/tasks/{task_id}", headers=_auth(alice_key), timeout=10).json()[
        "output_url"
    ]
    expires = int(parse_qs(urlsplit(url).query)["Expires"][0])  # signature v2: when it ends
    assert 3500 < expires - time.time() <= 3600


def test_the_submit_rate_is_shared_by_every_api_process(keyed_api, operator, tmp_path):
    tenant = operator.tenant("--submit-rate", "3/6seconds")
    key = operator.key(tenant)
    target = clip(tmp_path / "in.mp4", frames=24)
    answers = [_submit(keyed_api, key, target) for _ in range(4)]  # new connections: either process
    assert [a.status_code for a in answers] == [201, 201, 201, 429], [a.text for a in answers]
    refused = answers[-1]
    assert refused.headers["Content-Type"] == "application/problem+json"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 6
    time.sleep(wait)
    again = _submit(keyed_api, key, target)
    assert again.status_code == 201, again.text
    for answer in [*answers[:3], again]:
        requests.delete(f"{keyed_api}/v1/tasks/{answer.json()['id']}", headers=_auth(key), timeout=30)


def test_max_running_and_max_queued(keyed_api, operator, tmp_path):
    """One task of a max-running-1 tenant runs at a time, while another tenant's task runs
    beside it; with max-queued 1, a second waiting task is refused."""
    limited = operator.tenant("--max-running", "1", "--max-queued", "1")
    other = operator.tenant()
    limited_key, other_key = operator.key(limited), operator.key(other)
    target = clip(tmp_path / "in.mp4")
    first = _submit(keyed_api, limited_key, target).json()["id"]
    _wait(keyed_api, limited_key, first, ACTIVE | DONE)
    second = _submit(keyed_api, limited_key, target)
    assert second.status_code == 201, second.text
    full = _submit(keyed_api, limited_key, target)
    assert full.status_code == 429 and int(full.headers["Retry-After"]) > 0, full.text
    beside = _submit(keyed_api, other_key, target).json()["id"]

    ours = [first, second.json()["id"]]
    overlap_with_other = False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = [_state(keyed_api, limited_key, t) for t in ours]
        theirs = _state(keyed_api, other_key, beside)
        assert sum(s in ACTIVE for s in states) <= 1, states
        overlap_with_other |= theirs in ACTIVE and any(s in ACTIVE for s in states)
        if all(s in DONE for s in [*states, theirs]):
            break
        time.sleep(0.05)
    assert [_state(keyed_api, limited_key, t) for t in ours] == ["succeeded", "succeeded"]
    assert _state(keyed_api, other_key, beside) == "succeeded"
    assert overlap_with_other  # the other tenant was not kept waiting behind them


def test_the_monthly_frame_quota(keyed_api, operator, tmp_path):
    """A task whose frames do not fit in what is left of the month is refused whole, not
    allowed to overrun: 96 frames fit in 150, a second 96 do not."""
    tenant = operator.tenant("--monthly-frames", "150")
    key = operator.key(tenant)
    task_id = _submit(keyed_api, key, clip(tmp_path / "in.mp4")).json()["id"]
    assert _wait(keyed_api, key, task_id, DONE) == "succeeded"
    refused = _submit(keyed_api, key, clip(tmp_path / "in.mp4"))
    assert refused.status_code == 403, refused.text
    assert "54 of the monthly quota of 150 are left" in refused.json()["detail"]
    shown = operator.run("tenants", "show", tenant)
    assert shown.returncode == 0, shown.stderr
    assert "96 frames" in shown.stdout and "whsec_" in shown.stdout
    assert tenant in operator.run("tenants", "list").stdout


def test_the_cli_client_sends_its_key(keyed_api, operator, tmp_path):
    tenant = operator.tenant()
    key = operator.key(tenant)
    task = submit_task(keyed_api, clip(tmp_path / "in.mp4"), [], JOB, api_key=key)
    shown = operator.run("status", task["id"], "--api", keyed_api)
    assert shown.returncode == 1 and "401" in shown.stderr  # no FACEFLEET_API_KEY
    with_key = Operator({**operator.env, "FACEFLEET_API_KEY": key}).run(
        "status", task["id"], "--api", keyed_api
    )
    assert with_key.returncode == 0 and task["id"] in with_key.stdout, with_key.stderr
    requests.delete(f"{keyed_api}/v1/tasks/{task['id']}", headers=_auth(key), timeout=30)
