"""``facefleet tenants`` and ``facefleet keys``: operators manage customers and their API
keys, straight in the database (FACEFLEET_DATABASE_URL)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


def register(subparsers: Any) -> None:
    tenants = subparsers.add_parser("tenants", help="create, list, show and update tenants")
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (("create", "add a tenant"), ("update", "change a tenant's limits")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("name", help="the tenant's name: 1-63 of a-z, 0-9, - and _")
        action.add_argument("--submit-rate", help="submissions per period, as N/PERIOD (10/minute, 1000/day)")
        action.add_argument("--max-queued", type=int, help="tasks that may wait at once (more: 429)")
        action.add_argument(
            "--max-running", type=int, help="tasks that may run at once (the rest wait queued)"
        )
        action.add_argument("--monthly-frames", type=int, help="frames a calendar month (more: 403)")
        action.add_argument(
            "--s3-allow",
            action="append",
            metavar="BUCKET/PREFIX",
            help="s3:// inputs the tenant may name (repeat for several; replaces the list)",
        )
        action.add_argument("--no-s3-allow", action="store_true", help="no s3:// inputs for the tenant")
    actions.add_parser("list", help="every tenant with its limits")
    show = actions.add_parser(
        "show", help="a tenant's limits, this month's usage and its webhook signing secret"
    )
    show.add_argument("name", help="the tenant's name")
    rotate = actions.add_parser(
        "rotate-secret", help="a new webhook signing secret; the old one also signs for 24 h (printed last)"
    )
    rotate.add_argument("name", help="the tenant's name")
    tenants.set_defaults(handler=handle_tenants)

    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser("create", help="a new key; the secret is printed once, on the last line")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--admin", action="store_true", help="the key sees every tenant's tasks")
    create.add_argument("--name", dest="label", help="a label to recognise the key by")
    listing = key_actions.add_parser("list", help="keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys (default: all)")
    revoke = key_actions.add_parser("revoke", help="revoke a key (refused from the next request on)")
    revoke.add_argument(
        "key", metavar="ID_OR_PREFIX", help="the key's id, or the start of the key (ffk_<id>)"
    )
    keys.set_defaults(handler=handle_keys)


def _sessions(settings: Settings) -> Any:
    from facefleet.records.engine import make_engine, make_sessionmaker

    if not settings.database_url:
        raise SystemExit("facefleet: FACEFLEET_DATABASE_URL is not set")
    return make_sessionmaker(make_engine(settings.database_url, settings.database_timeouts()))


def _limits(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from facefleet.task.s3_inputs import S3AllowError, allow_entry
    from facefleet.tenants.tenancy import TenancyError

    names = ("submit_rate", "max_queued", "max_running", "monthly_frames")
    limits = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.no_s3_allow:
        limits["s3_allow"] = None
    elif args.s3_allow:
        try:
            limits["s3_allow"] = [allow_entry(entry, settings.s3_bucket) for entry in args.s3_allow]
        except S3AllowError as exc:
            raise TenancyError(f"--s3-allow: {exc}") from None
    return limits


def _or_off(value: Any) -> str:
    return "-" if value is None else str(value)


def handle_tenants(args: argparse.Namespace, settings: Settings) -> int:
    return _run(lambda: _tenants(args, settings))


def _tenants(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.tenants import tenancy

    sessions = _sessions(settings)
    if args.action == "create":
        tenant = tenancy.create_tenant(sessions, args.name, **_limits(args, settings))
        print(f"tenant {tenant.name} created")
    elif args.action == "update":
        tenant = tenancy.update_tenant(sessions, args.name, **_limits(args, settings))
        print(f"tenant {tenant.name} updated")
    elif args.action == "rotate-secret":
        tenant = tenancy.rotate_secret(sessions, args.name)
        print(
            f"tenant {tenant.name}: new webhook secret; the old one signs too until {tenant.webhook_secret_previous_until:%Y-%m-%d %H:%M:%S} UTC"
        )
        print(tenant.webhook_secret)
    elif args.action == "list":
        print(f"{'NAME':24} {'SUBMIT-RATE':14} {'MAX-QUEUED':>10} {'MAX-RUNNING':>11} {'MONTHLY-FRAMES':>14}")
        for tenant in tenancy.list_tenants(sessions):
            print(
                f"{tenant.name:24} {_or_off(tenant.submit_rate):14} {_or_off(tenant.max_queued):>10} "
                f"{_or_off(tenant.max_running):>11} {_or_off(tenant.monthly_frames):>14}"
            )
    else:
        tenant = tenancy.get_tenant(sessions, args.name)
        with sessions() as session:
            usage = tenancy.usage_this_month(session, tenant.name)
        for label, value in (
            ("name", tenant.name),
            ("submit rate", _or_off(tenant.submit_rate)),
            ("max queued", _or_off(tenant.max_queued)),
            ("max running", _or_off(tenant.max_running)),
            ("monthly frames", _or_off(tenant.monthly_frames)),
            ("s3 allow", ", ".join(tenant.s3_allow or []) or "-"),
            (
                f"usage {usage.month}",
                f"{usage.tasks} tasks, {usage.frames} frames, {usage.worker_seconds:.0f} worker-s, "
                f"{usage.bytes_in} bytes in, {usage.bytes_out} bytes out",
            ),
            ("webhook secret", tenant.webhook_secret),
        ):
            print(f"{label + ':':16} {value}")
    return 0


def handle_keys(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.tenants import tenancy

    def action() -> int:
        sessions = _sessions(settings)
        if args.action == "create":
            key, secret = tenancy.create_key(sessions, args.tenant, admin=args.admin, label=args.label)
            print(f"key {key.id} for tenant {key.tenant}{' (admin)' if key.admin else ''}; it is shown once:")
            print(secret)
        elif args.action == "list":
            print(
                f"{'ID':12}  {'TENANT':20} {'LABEL':20} {'ADMIN':5} {'CREATED':20} {'LAST USED':20} REVOKED"
            )
            for key in tenancy.list_keys(sessions, args.tenant):
                print(
                    f"{key.id:12}  {key.tenant:20} {key.label or '-':20} {'yes' if key.admin else 'no':5} "
                    f"{_when(key.created_at):20} {_when(key.last_used_at):20} {_when(key.revoked_at)}"
                )
        else:
            key = tenancy.revoke_key(sessions, args.key)
            print(f"key {key.id} of tenant {key.tenant} revoked")
        return 0

    return _run(action)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _run(action: Any) -> int:
    from sqlalchemy.exc import OperationalError

    from facefleet.tenants.tenancy import TenancyError

    try:
        return int(action())
    except TenancyError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        print(f"facefleet: the database is not reachable ({type(exc.orig).__name__})", file=sys.stderr)
        return 1
