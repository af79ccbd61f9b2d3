"""``facefleet demo``: make a sample video from a photo in an installed package and run a job on it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facefleet.commands import run
from facefleet.demo import make_sample_video
from facefleet.settings import Settings

DEFAULT_PROCESSORS = "none"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="generate a sample video and run a job on it")
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="where the sample and result go")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--processors", default=DEFAULT_PROCESSORS)
    parser.add_argument("--workers", type=int, default=2)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    sample = args.dir / "sample.mp4"
    if not sample.exists():
        make_sample_video(sample, seconds=args.seconds)
    run_args = run.build_parser_namespace(
        target=sample,
        output=args.dir / "output.mp4",
        processors=args.processors,
        workers=args.workers,
    )
    return run.handle(run_args, settings)
