"""Flower on the same broker lists the workers."""

from __future__ import annotations

import requests

from tests.distributed.conftest import free_port, wait_for


def test_flower_lists_the_workers(fleet):
    fleet.ensure_workers()
    port = free_port()
    fleet.start("flower", ["flower", "--port", str(port)], "Visit me at")
    base = f"http://127.0.0.1:{port}"

    def workers() -> dict:
        try:
            response = requests.get(f"{base}/api/workers", params={"refresh": "true"}, timeout=10)
        except requests.RequestException:
            return {}
        return response.json() if response.ok else {}

    found = wait_for(
        lambda: [n for n in workers() if n.endswith("@fftest")] or None, 60, "Flower to list a worker"
    )
    assert any(name in found for name in (f"{w.name}-{fleet.run_id}@fftest" for w in fleet.live_workers()))
    assert requests.get(f"{base}/workers", timeout=10).status_code == 200
