"""``facefleet sla``: the service's figures over a window (GET /v1/stats), as a table or JSON.
Needs an admin key (FACEFLEET_API_KEY) where the API requires keys."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from cli.commands.api_calls import (
    ClientError,
    api_key_of,
    auth_headers,
    base_url,
    check_answer,
    common_flags,
    run_action,
)

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


def register(subparsers: Any) -> None:
    sla = subparsers.add_parser("sla", help="success ratio, latency percentiles, frames, utilisation")
    sla.add_argument("--window", default="24h", help="from 1m to 30d: 15m, 1h, 24h, 7d (default: 24h)")
    sla.add_argument("--tenant", help="one tenant's work (default: all)")
    sla.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    common_flags(sla)
    sla.set_defaults(handler=handle_sla)


def get_stats(
    base: str, window: str, tenant: str | None = None, api_key: str | None = None
) -> dict[str, Any]:
    import requests

    params = {"window": window, **({"tenant": tenant} if tenant else {})}
    try:
        response = requests.get(f"{base}/v1/stats", params=params, headers=auth_headers(api_key), timeout=60)
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the API at {base}: {type(exc).__name__}") from None
    return check_answer(response)


def handle_sla(args: argparse.Namespace, settings: Settings) -> int:
    def action() -> int:
        body = get_stats(base_url(args, settings), args.window, args.tenant, api_key_of(settings))
        print(json.dumps(body, indent=2) if args.json else table(body))
        return 0

    return run_action(action)


def table(body: dict[str, Any]) -> str:
    tasks, slots = body["tasks"], body["worker_slots"]
    since, until = (body[end][:16].replace("T", " ") for end in ("since", "until"))
    tenant = f"tenant {body['tenant']}" if body["tenant"] else "all tenants"
    if slots is None:
        utilisation = "- (the workers' slots are unknown: Redis did not answer)"
    elif not slots:
        utilisation = "- (no worker announces itself now)"
    else:
        utilisation = f"{_percent(body['worker_utilisation'], 1)} of {slots} chunk slots"
    rows = [
        ("window", f"{body['window']} ({since} to {until} UTC), {tenant}"),
        (
            "tasks ended",
            f"{tasks['total']}: {tasks['succeeded']} succeeded, {tasks['failed']} failed, "
            f"{tasks['cancelled']} cancelled",
        ),
        ("success ratio", _percent(body["success_ratio"], 3)),
        ("", "".join(f"{q:>10}" for q in ("p50", "p95", "p99"))),
        ("turnaround", _quantiles(body["turnaround_seconds"])),
        ("frame latency", _quantiles(body["frame_latency_seconds"])),
        ("frames processed", str(body["frames_processed"])),
        ("worker utilisation", utilisation),
    ]
    return "\n".join(f"{label:<20}{value}".rstrip() for label, value in rows)


def _percent(ratio: float | None, digits: int) -> str:
    return "-" if ratio is None else f"{ratio * 100:.{digits}f} %"


def _quantiles(values: dict[str, float | None]) -> str:
    return "".join(f"{_seconds(values[q]):>10}" for q in ("p50", "p95", "p99"))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
