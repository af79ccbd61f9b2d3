"""``facefleet worker``: the Celery worker (each also runs the reaper and the dispatcher)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from facefleet.fleet.queues import CHUNKS, QUEUES
from facefleet.observability import logs
from facefleet.observability.metrics_dir import MULTIPROC_ENV, remove_private_dir, use_private_dir

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="process tasks from the queues (Celery worker)")
    parser.add_argument(
        "--queues",
        default=",".join(QUEUES),
        help=f"comma-separated, among {', '.join(QUEUES)} (default: all)",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="processes (one per GPU is a good start)")
    parser.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="Celery's execution pool: processes, the main process alone, or threads (default: prefork)",
    )
    parser.add_argument("--name", default=None, help="worker node name (default: facefleet@HOST-PID)")
    parser.add_argument("--loglevel", default=None, help="default: FACEFLEET_LOG_LEVEL, else INFO")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics for this worker's pool here (default: FACEFLEET_METRICS_PORT, else 9101; 0: off)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="probe: exit 0 if this host's worker (--name: that one) is ready, else 1 and why",
    )
    parser.add_argument(
        "--alive",
        action="store_true",
        help="with --check: exit 0 while the worker still reports, ready or not (a liveness probe)",
    )
    parser.add_argument(
        "--gpus",
        default=None,
        help="all or GPU indices (0,1,...): one supervised worker process per GPU, each pinned to it "
        "(CUDA_VISIBLE_DEVICES); --concurrency and the rest apply to each",
    )
    parser.add_argument(
        "--hwaccel",
        choices=["auto", "none"],
        default=None,
        help="NVDEC where this FFmpeg build and host have it (auto) or the CPU decoders (none); "
        "a worker always encodes on the CPU; default: FACEFLEET_HWACCEL, else none",
    )
    parser.add_argument(
        "--segment-pause", type=float, default=0.0, help=argparse.SUPPRESS
    )  # slows each segment (demos, fault-injection tests)
    parser.set_defaults(handler=handle_worker)


def _app(settings: Settings, **kwargs: Any) -> Any:
    from facefleet.modes.distributed import require
    from worker.app import create_celery

    require(settings)

    return create_celery(settings, **kwargs)


def handle_check(args: argparse.Namespace, settings: Settings) -> int:
    """The worker's own report, in the work dir it shares with its probe (same container,
    same FACEFLEET_WORK_DIR): no Redis or database round trip, so the probe is cheap and says
    what the worker itself last saw."""
    from facefleet.fleet.readiness import check_host

    ready, message = check_host(settings.scratch_dir, args.name, alive_only=args.alive)
    print(f"facefleet worker: {message}", file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


def handle_worker(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.distributed import ConfigurationError, check_bucket
    from facefleet.provenance.signing import ProvenanceConfigError, check_signing

    if args.check:
        return handle_check(args, settings)
    try:
        check_signing(settings)  # the stitch signs with it: an unusable one stops the worker here
    except ProvenanceConfigError as exc:
        print(f"facefleet worker: {exc}", file=sys.stderr)
        return 2
    if args.hwaccel is not None:
        settings = settings.model_copy(update={"hwaccel": args.hwaccel})
    if args.gpus is not None:
        return handle_gpus(args, settings)
    _report_codecs(settings)
    chosen = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = [q for q in chosen if q not in QUEUES]
    if unknown or not chosen:
        from cli.option_flags import suggest

        hint = suggest(unknown[0], QUEUES) if unknown else ""
        named = f"unknown queue {unknown[0]!r}{hint}" if unknown else "no queue named"
        print(f"facefleet worker: --queues: {named}; the queues are {', '.join(QUEUES)}", file=sys.stderr)
        return 2
    try:
        check_bucket(settings)  # a missing bucket or credentials: said here, as doctor says it
    except ConfigurationError as exc:
        print(f"facefleet worker: {exc}", file=sys.stderr)
        return 2
    from cli.doctor_checks import database_misconfigured

    problem = database_misconfigured(settings)  # missing, or not migrated: as doctor says it
    if problem:
        print(f"facefleet worker: {problem}", file=sys.stderr)
        return 2
    name = args.name or f"facefleet@{socket.gethostname()}-{os.getpid()}"
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    metrics_dir = use_private_dir("worker") if port else None  # before prometheus_client is imported
    if not port:
        os.environ.pop(MULTIPROC_ENV, None)  # metrics stay in each process, unread
    from worker.app import preset_celery_environment

    preset_celery_environment()  # process set-up: before the first thread starts
    try:
        app = _app(
            settings,
            segment_pause_s=args.segment_pause,
            node_name=name,
            chunk_slots=args.concurrency if CHUNKS in chosen else 0,
            pool_slots=args.concurrency if args.pool != "solo" else 1,
            metrics_port=port,
            served=tuple(q for q in QUEUES if q in chosen),
            pool=args.pool,
        )
    except ConfigurationError as exc:
        print(f"facefleet worker: {exc}", file=sys.stderr)
        return 2
    from worker.app import worker_queues

    queues = worker_queues(settings, chosen)
    argv = [
        *_quiet(args, settings),
        "worker",
        f"--loglevel={logging.getLevelName(logging.getLogger().level)}",
        f"--queues={','.join(queues)}",
        f"--concurrency={args.concurrency}",
        f"--pool={args.pool}",
        f"--hostname={name}",
        "--task-events",
        "--without-mingle",
        "--without-gossip",
    ]
    try:
        app.worker_main(argv)
    finally:
        if metrics_dir is not None:
            remove_private_dir(metrics_dir)
    return 0


def handle_gpus(args: argparse.Namespace, settings: Settings) -> int:
    """``--gpus``: one worker per GPU under a supervisor (see ``worker/supervisor.py``)."""
    from facefleet.modes.distributed import ConfigurationError, require
    from pipeline.devices import NoGpuError, choose_gpus, list_gpus
    from worker.supervisor import supervise

    fake = settings.test_hooks.fake_gpus
    try:
        present = (
            [g.strip() for g in fake.split(",") if g.strip()] if fake else [g.index for g in list_gpus()]
        )
        gpus = choose_gpus(args.gpus, present)
    except NoGpuError as exc:
        print(
            f"facefleet worker --gpus {args.gpus}: {exc}; without --gpus the worker runs on the CPU",
            file=sys.stderr,
        )
        return 2
    try:
        require(settings)  # said once here, not by every child restarted again and again
    except ConfigurationError as exc:
        print(f"facefleet worker: {exc}", file=sys.stderr)
        return 2
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    name = args.name or f"facefleet@{socket.gethostname()}-{os.getpid()}"
    common = [
        "--queues", args.queues,
        "--concurrency", str(args.concurrency),
        "--pool", args.pool,
        "--segment-pause", str(args.segment_pause),
    ]  # fmt: skip
    if args.loglevel:
        common += ["--loglevel", args.loglevel]
    if args.hwaccel:
        common += ["--hwaccel", args.hwaccel]
    if getattr(args, "log_format", None):
        common += ["--log-format", args.log_format]
    per_gpu = {gpu: [*common, "--name", f"{name}-gpu{gpu}"] for gpu in gpus}
    return supervise(per_gpu, port)


def _report_codecs(settings: Settings) -> None:
    """Said at start-up: the worker decodes with NVDEC where chosen and always encodes on the
    CPU (a distributed task's segments must all come from one encoder: pipeline.hwaccel)."""
    from pipeline.hwaccel import choose

    codecs = choose(settings.hwaccel).decode_only()
    logging.getLogger(__name__).info("video codecs (--hwaccel %s): %s", settings.hwaccel, codecs.reason)


def _quiet(args: argparse.Namespace, settings: Settings) -> list[str]:
    """No banner where the logs are JSON: every line stays one object."""
    chosen = getattr(args, "log_format", None) or settings.log_format
    return [] if logs.resolve_format("worker", chosen) == "text" else ["--quiet"]
