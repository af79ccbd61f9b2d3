"""``facefleet flower``: Flower, the Celery dashboard, on the same broker as the workers."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefleet.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("flower", help="serve the Flower dashboard for the workers")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--url-prefix", default="", help="when served behind a proxy under a path")
    parser.add_argument(
        "--basic-auth", default=None, help="user:password (or set FLOWER_BASIC_AUTH); never logged"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from celery import Celery

    from worker.app import celery_config

    # Flower needs the broker and the queue names only: no database, no bucket
    app = Celery("facefleet", broker=settings.effective_broker_url, set_as_current=False)
    app.conf.update(celery_config(settings))
    argv = ["flower", f"--address={args.address}", f"--port={args.port}"]
    if args.url_prefix:
        argv.append(f"--url_prefix={args.url_prefix}")
    if args.basic_auth:
        argv.append(f"--basic_auth={args.basic_auth}")
    try:
        app.start(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        print(f"facefleet flower: {exc}", file=sys.stderr)
        return 1
    return 0
