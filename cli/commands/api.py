"""``facefleet api``: the submission API under gunicorn."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from facefleet.observability.metrics_dir import remove_private_dir, use_private_dir
from facefleet.storage.scratch import sweep

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

RESERVED_THREADS = 1  # write threads of each process that never receive a submission (cancel, delete)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="serve the HTTP API (gunicorn)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0: every interface (default: 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads per worker process for submissions, cancels, deletes"
    )
    parser.add_argument(
        "--read-threads",
        type=int,
        default=4,
        help="threads per worker process for reads (health, status, lists): never taken by uploads",
    )
    parser.add_argument(
        "--stream-threads",
        type=int,
        default=256,
        help="threads per worker process for live event streams (one per follower, for the stream's life)",
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds a request may take (large uploads)")
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        help="on SIGTERM, seconds the requests in flight get to finish (no new ones are taken)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication

    from facefleet.modes.distributed import ConfigurationError, require

    try:
        require(settings)
    except ConfigurationError as exc:
        print(f"facefleet api: {exc}", file=sys.stderr)
        return 2
    if settings.api_submit_threads is None:  # the rest answer cancels, deletes and refusals
        settings = settings.model_copy(update={"api_submit_threads": max(1, args.threads - RESERVED_THREADS)})
    sweep(settings.scratch_dir, time.time())  # uploads of API processes that died
    metrics_dir = use_private_dir("api")  # before prometheus_client is imported
    from gunicorn.glogging import Logger

    from api.serving import worker_class
    from facefleet.observability.metrics import mark_process_dead

    class _Logs(Logger):  # type: ignore[misc]
        """gunicorn's messages go through the process's one structured handler."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                logger.handlers.clear()
                logger.propagate = True

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set(
                "worker_class",
                worker_class(settings.api_header_timeout_s, args.read_threads, args.stream_threads),
            )
            self.cfg.set("timeout", args.timeout)
            self.cfg.set("logger_class", _Logs)  # the app logs each request, with its id
            self.cfg.set("child_exit", lambda _server, worker: mark_process_dead(worker.pid))
            self.cfg.set("graceful_timeout", args.graceful_timeout)
            self.cfg.set("limit_request_line", 8190)  # gunicorn's most; longer gets its own 400

        def load(self) -> Any:  # once per gunicorn worker process
            from api.app import create_app

            return create_app(settings)

    try:
        _Server().run()
    finally:
        remove_private_dir(metrics_dir)
    return 0
