"""``facefleet demo``: make a sample video from a photo in an installed package and run a job on it.

The default chain anonymises (blurs) every face with the small SCRFD detector (det_500m),
the one face model small enough to fetch anywhere; `--processors face_swapper` swaps in the
face that ships with insightface once the swapper's models are present (`facefleet models
download`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.commands import run
from cli.option_flags import PROCESSORS_HELP, HelpFormatter

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

DESCRIPTION = """\
Make a sample video (a group photo, panned and zoomed, with a tone) and run a job on it,
embedded, as `facefleet run` would: by default every face is blurred (face_anonymizer with
the small det_500m detector), which needs no model beyond det_500m.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate a sample video and blur its faces (the first command to try)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(".demo"), help="where the sample and the result go (default: .demo)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the sample video (default: 8)")
    parser.add_argument(
        "--processors",
        default="face_anonymizer",
        metavar="LIST",
        help=PROCESSORS_HELP + " (default: face_anonymizer)",
    )
    parser.add_argument(
        "--face-detector", default="det_500m", metavar="MODEL", help="face detector model (default: det_500m)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, metavar="W", help="chunks processed at once (default: 2)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.demo import make_sample_video

    sample = args.dir / f"sample-{args.seconds:g}s.mp4"
    if not sample.exists():
        print(f"making a {args.seconds:g} s sample video: {sample}", file=sys.stderr)
        make_sample_video(sample, seconds=args.seconds)
    sources = [_source(args.dir)] if "face_swapper" in args.processors else []
    run_args = run.build_parser_namespace(
        target=sample,
        source=sources,
        output=args.dir / "output.mp4",
        processors=args.processors,
        face_detector=args.face_detector,
        workers=args.workers,
    )
    print(
        f"running: {_what(args.processors)} with {args.face_detector}, {args.workers} worker(s)",
        file=sys.stderr,
    )
    return run.handle(run_args, settings)


def _source(folder: Path) -> Path:
    from facefleet.modes.demo import source_face

    return source_face(folder / "source.png")


def _what(processors: str) -> str:
    names = [n.strip() for n in processors.split(",") if n.strip() and n.strip() != "none"]
    words = {
        "face_anonymizer": "blurring every face (face_anonymizer)",
        "face_swapper": "swapping every face (face_swapper)",
        "face_enhancer": "enhancing every face (face_enhancer)",
        "face_debugger": "drawing every face's box (face_debugger)",
    }
    return ", then ".join(words.get(n, n) for n in names) or "re-encoding (no processor)"
