"""A fleet that delivers webhooks to receivers on loopback (``receivers.py``), and the calls
the batch and webhook tests share: workers allowed to reach 127.0.0.1, an API with keys that
also accepts 127.0.0.2 (a URL a worker then refuses at delivery), a tenant, its key and its
signing secret."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from facefleet.records.db import Tenant

# the workers may reach loopback receivers (the API also 127.0.0.2: a URL it accepts that a
# worker refuses at delivery, as a name that resolves elsewhere later would be)
HOOK_ENV = {
    "FACEFLEET_EGRESS_ALLOW": "127.0.0.1/32",
    "FACEFLEET_WEBHOOK_RETRY_BASE_S": "0.3",
    "FACEFLEET_WEBHOOK_TIMEOUT_S": "3",
    # the contract's 10 s, lowered so that a short job writes several progress events
    "FACEFLEET_WEBHOOK_PROGRESS_EVERY_S": "1",
}
PROGRESS_EVERY_S = 1.0


@contextlib.contextmanager
def hooked_fleet(fleet: Any, operator: Any, services: Any) -> Iterator[dict[str, Any]]:
    """{url, tenant, key, secret, fleet}: two workers that may deliver to loopback (the only
    ones in the block), an API with keys."""
    fleet.stop_workers()
    workers = [fleet.start_worker(extra_env=HOOK_ENV, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_for_log("ready.")
    env = {"FACEFLEET_AUTH": "on", "FACEFLEET_EGRESS_ALLOW": "127.0.0.1/32,127.0.0.2/32"}
    with fleet.api_deployment("api-hooks", env) as url:
        tenant = operator.tenant()
        key = operator.key(tenant)
        try:
            yield {
                "url": url,
                "tenant": tenant,
                "key": key,
                "secret": tenant_secret(services, tenant),
                "fleet": fleet,
            }
        finally:
            fleet.stop_workers()


def tenant_secret(services: Any, tenant: str) -> str:
    with services.sessions() as session:
        return str(session.get(Tenant, tenant).webhook_secret)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def get(hooks: dict[str, Any], path: str) -> dict[str, Any]:
    response = requests.get(f"{hooks['url']}{path}", headers=auth(hooks["key"]), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def submit_batch(
    hooks: dict[str, Any], targets: list[Path], options: dict[str, Any], key: str | None = None
) -> requests.Response:
    fields: list[tuple[str, Any]] = [("options", (None, json.dumps(options)))]
    fields += [("target", (path.name, path.read_bytes(), "video/mp4")) for path in targets]
    headers = auth(hooks["key"]) | ({"Idempotency-Key": key} if key else {})
    return requests.post(f"{hooks['url']}/v1/batches", files=fields, headers=headers, timeout=120)


def submit_task(hooks: dict[str, Any], target: Path, options: dict[str, Any]) -> str:
    response = requests.post(
        f"{hooks['url']}/v1/tasks",
        files=[("options", (None, json.dumps(options))), ("target", (target.name, target.read_bytes()))],
        headers=auth(hooks["key"]),
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def deliveries(hooks: dict[str, Any], path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(hooks, path)["items"]
    return items
