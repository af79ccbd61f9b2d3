"""``facefleet run``: one job, embedded, with a progress bar; the same command resumes it.
Several ``--target`` (or a folder) run as one batch: ``--output`` is then a folder, one output
per item named after its input, a line per item; the same command resumes the batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

    from facefleet.config.options import JobOptions
    from facefleet.config.settings import Settings

# CLI flag -> option field, for the options that are plain values
_OPTION_FLAGS = {
    "chunk_frames": int,
    "segment_frames": int,
    "trim_start": int,
    "trim_end": int,
    "codec": str,
    "crf": int,
    "preset": str,
    "pix_fmt": str,
    "container": str,
    "faststart": bool,
    "face_selector": str,
    "reference_distance": float,
    "face_detector": str,
    "detector_score": float,
    "detector_nms": float,
    "face_recognizer": str,
    "detector_size": int,
    "swapper_model": str,
    "enhancer_model": str,
    "enhancer_blend": float,
    "anonymizer_mode": str,
    "face_batch": int,
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run a job on this machine (resumable)")
    parser.add_argument(
        "--target",
        type=Path,
        action="append",
        required=True,
        help="the video to process; repeatable, or a folder of videos: a batch (--output a folder)",
    )
    parser.add_argument(
        "--source", type=Path, action="append", default=[], help="a source face image (repeatable)"
    )
    parser.add_argument("--reference", type=Path, help="reference face image for --face-selector reference")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="where to write the video (MP4 unless --container or the name says .mov/.mkv); "
        "for a batch, the folder to write one output per item",
    )
    parser.add_argument("--processors", default="none", help="comma-separated chain, or none")
    parser.add_argument("--workers", type=int, default=1, help="chunks processed in parallel processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the job's files under FACEFLEET_HOME after the output is written (a rerun then reuses it)",
    )
    add_option_flags(parser, _OPTION_FLAGS)
    parser.set_defaults(handler=handle)


def add_option_flags(parser: argparse.ArgumentParser, flags: dict[str, type]) -> None:
    """``--name VALUE`` per option, None when not given; a yes/no one takes ``--name``,
    ``--name true|false`` or ``--no-name``."""
    for name, kind in flags.items():
        flag = f"--{name.replace('_', '-')}"
        if kind is bool:
            parser.add_argument(flag, dest=name, nargs="?", const=True, type=_yes_no, default=None)
            parser.add_argument(f"--no-{flag[2:]}", dest=name, action="store_false")
        else:
            parser.add_argument(flag, dest=name, type=kind, default=None)


def _yes_no(text: str) -> bool:
    value = {
        "true": True,
        "yes": True,
        "1": True,
        "on": True,
        "false": False,
        "no": False,
        "0": False,
        "off": False,
    }
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return value[text.lower()]


def build_parser_namespace(**values: Any) -> argparse.Namespace:
    """The namespace ``facefleet run`` would parse, with the given values (for other commands)."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["run", "--target", "-", "--output", "-"])
    for name, value in values.items():
        setattr(args, name, value)
    return args


def options_from_args(args: argparse.Namespace, settings: Settings) -> JobOptions:
    from facefleet.config.options import parse_options

    raw: dict[str, Any] = {"processors": args.processors}
    raw.update({name: getattr(args, name) for name in _OPTION_FLAGS if getattr(args, name) is not None})
    return parse_options(raw, settings.job_defaults())


def handle(args: argparse.Namespace, settings: Settings) -> int:
    # the engine is loaded by the command that runs it, not by `facefleet --help`
    from facefleet.config.errors import InvalidSubmission, MediaRefused
    from facefleet.config.options import OptionsError
    from facefleet.modes.embedded import EmbeddedJobError, JobRequest, run_job
    from facefleet.storage.base import StorageError
    from pipeline.errors import PipelineError

    targets = args.target if isinstance(args.target, list) else [args.target]
    if len(targets) > 1 or targets[0].is_dir():
        from cli.commands.run_batch import handle_batch

        return handle_batch(args, settings, targets)
    args.target = targets[0]
    try:
        if args.workers < 1:
            raise OptionsError("--workers must be at least 1")
        if args.container is None and args.output.suffix.lower() in (".mov", ".mkv"):
            args.container = args.output.suffix.lower()[1:]  # the output's name says which
        request = JobRequest(
            target=args.target,
            sources=tuple(args.source),
            reference=args.reference,
            output=args.output,
            options=options_from_args(args, settings),
        )
        if args.keep_work:
            settings = settings.model_copy(update={"keep_work_files": True})
        with _ProgressBar(enabled=not args.no_progress) as bar:
            run_job(settings, request, workers=args.workers, on_progress=bar.update)
    except (
        OptionsError,
        InvalidSubmission,
        MediaRefused,
        EmbeddedJobError,
        PipelineError,
        StorageError,
    ) as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk, the home folder, the output folder
        where = f": {exc.filename}" if exc.filename else ""
        print(f"facefleet: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facefleet: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(args.output)
    return 0


class _ProgressBar:
    """A tqdm bar over frames, created when the frame total is first known."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: tqdm | None = None

    def update(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, unit="frame", dynamic_ncols=True, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
