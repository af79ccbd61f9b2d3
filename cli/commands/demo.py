"""``facefleet demo``: make a sample video from a photo in an installed package and run a job on it.

The default chain anonymises every face with the small SCRFD detector (det_500m), the one
face model small enough to fetch anywhere; `--processors face_swapper` swaps in the face
that ships with insightface once the swapper's models are present (`facefleet models download`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.commands import run

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="generate a sample video and run a job on it")
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="where the sample and result go")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the sample video")
    parser.add_argument("--processors", default="face_anonymizer")
    parser.add_argument("--face-detector", default="det_500m")
    parser.add_argument("--workers", type=int, default=2)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.demo import make_sample_video, source_face

    sample = args.dir / f"sample-{args.seconds:g}s.mp4"
    if not sample.exists():
        make_sample_video(sample, seconds=args.seconds)
    sources = [source_face(args.dir / "source.png")] if "face_swapper" in args.processors else []
    run_args = run.build_parser_namespace(
        target=sample,
        source=sources,
        output=args.dir / "output.mp4",
        processors=args.processors,
        face_detector=args.face_detector,
        workers=args.workers,
    )
    print(f"sample: {sample}")
    return run.handle(run_args, settings)
