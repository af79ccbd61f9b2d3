"""``facefleet flower``: Flower, the Celery dashboard, on the same broker as the workers.

Flower shows and controls the whole fleet, so it refuses to listen beyond loopback without
authentication: basic auth (FACEFLEET_FLOWER_BASIC_AUTH=user:password) or Flower's own OAuth
settings (FLOWER_AUTH, FLOWER_AUTH_PROVIDER, FLOWER_OAUTH2_KEY, FLOWER_OAUTH2_SECRET,
FLOWER_OAUTH2_REDIRECT_URI), which Flower reads from the environment as they are. The
password reaches Flower through its environment, never the command line (``ps`` shows that).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

OAUTH_SETTINGS = ("FLOWER_AUTH", "FLOWER_AUTH_PROVIDER", "FLOWER_OAUTH2_KEY", "FLOWER_OAUTH2_SECRET")
HOW_TO_AUTHENTICATE = (
    "set FACEFLEET_FLOWER_BASIC_AUTH=user:password (from a secret), or Flower's OAuth settings "
    f"({', '.join(OAUTH_SETTINGS)}, FLOWER_OAUTH2_REDIRECT_URI), or listen on 127.0.0.1"
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("flower", help="serve the Flower dashboard for the workers")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on; any other than 127.0.0.1 needs FACEFLEET_FLOWER_BASIC_AUTH (default: 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=5555, help="port to listen on (default: 5555)")
    parser.add_argument("--url-prefix", default="", help="when served behind a proxy under a path")
    parser.add_argument(
        "--basic-auth",
        default=None,
        help="user:password (prefer FACEFLEET_FLOWER_BASIC_AUTH: a command line is visible to ps)",
    )
    parser.set_defaults(handler=handle)


def loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name, or "" (every address)
        return False


def basic_auth(args: argparse.Namespace, settings: Settings) -> str | None:
    if args.basic_auth:
        return str(args.basic_auth)
    if settings.flower_basic_auth is not None:
        return settings.flower_basic_auth.get_secret_value()
    return os.environ.get("FLOWER_BASIC_AUTH") or None  # Flower's own name for it


def auth_problem(address: str, credentials: str | None) -> str | None:
    """Why Flower must not start as asked, or None."""
    if credentials is not None:
        for pair in credentials.split(","):
            user, _, password = pair.partition(":")
            if not user or not password:
                return "FACEFLEET_FLOWER_BASIC_AUTH must be user:password (comma-separated for several)"
        return None
    if loopback(address) or all(os.environ.get(name) for name in OAUTH_SETTINGS):
        return None
    return f"refusing to serve Flower on {address or 'every address'} without authentication: {HOW_TO_AUTHENTICATE}"


def _guard_metrics() -> None:
    """Flower serves /metrics without the authentication of its other pages (its handler is
    not marked ``authenticated``): the same check as theirs, so a scraper sends the same
    credentials. /healthcheck stays open, for probes."""
    import tornado.web
    from flower.views.monitor import Metrics

    Metrics.get = tornado.web.authenticated(Metrics.get)  # type: ignore[method-assign]


def handle(args: argparse.Namespace, settings: Settings) -> int:
    credentials = basic_auth(args, settings)
    problem = auth_problem(args.address, credentials)
    if problem:
        print(f"facefleet flower: {problem}", file=sys.stderr)
        return 2
    if credentials is not None:
        os.environ["FLOWER_BASIC_AUTH"] = credentials  # Flower reads its options from there too
    _guard_metrics()

    from celery import Celery

    from worker.app import celery_config

    # Flower needs the broker and the queue names only: no database, no bucket
    app = Celery("facefleet", broker=settings.effective_broker_url, set_as_current=False)
    app.conf.update(celery_config(settings))
    argv = ["flower", f"--address={args.address}", f"--port={args.port}"]
    if args.url_prefix:
        argv.append(f"--url_prefix={args.url_prefix}")
    try:
        app.start(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        print(f"facefleet flower: {exc}", file=sys.stderr)
        return 1
    return 0
