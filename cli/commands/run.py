"""``facefleet run``: one job, embedded, with a progress bar; the same command resumes it.
Several ``--target`` (or a folder) run as one batch: ``--output`` is then a folder, one output
per item named after its input, a line per item; the same command resumes the batch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.option_flags import (
    DETECTORS,
    JOB_FLAGS,
    PROCESSORS_HELP,
    HelpFormatter,
    add_option_flags,
    options_from_args,
    with_flag,
)
from cli.progress import FrameBar, quality_line

if TYPE_CHECKING:
    from facefleet.config.settings import Settings
    from pipeline.hwaccel import Codecs


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="process a video on this machine (resumable: run the same command again)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--target",
        type=Path,
        action="append",
        required=True,
        metavar="VIDEO",
        help="the video to process; repeatable, or a folder of videos: a batch (--output a folder)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        default=[],
        metavar="IMAGE",
        help="a face to swap in (face_swapper; repeatable: their identities are averaged)",
    )
    parser.add_argument(
        "--reference", type=Path, metavar="IMAGE", help="the face to process, with --face-selector reference"
    )
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="PATH",
        help="where to write the video; it appears only when complete (a batch: the folder for one output per item)",
    )
    parser.add_argument(
        "--processors", default="none", metavar="LIST", help=PROCESSORS_HELP + " (default: none)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="W",
        help="chunks processed at once, in W processes (default: 1)",
    )
    parser.add_argument(
        "--hwaccel",
        choices=["auto", "none"],
        default=None,
        help="NVDEC/NVENC where this FFmpeg build and host have them (auto) or the CPU codecs "
        "(none); default: FACEFLEET_HWACCEL, else none",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or phase lines")
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the job's files under FACEFLEET_HOME after the output is written or the job "
        "failed (a rerun then reuses them; see facefleet jobs)",
    )
    add_option_flags(parser, JOB_FLAGS)
    parser.set_defaults(handler=handle)


DESCRIPTION = """\
Process one video on this machine, embedded: no services, state in FACEFLEET_HOME.

Kill it at any time (Ctrl-C, kill, even kill -9) and run the same command again: the job's
id is derived from its inputs and options, so it resumes from the segments already stored.

example:
  facefleet run --target talk.mp4 --output blurred.mp4 --processors face_anonymizer \\
      --face-detector det_500m --workers 2
"""


def build_parser_namespace(**values: Any) -> argparse.Namespace:
    """The namespace ``facefleet run`` would parse, with the given values (for other commands)."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["run", "--target", "-", "--output", "-"])
    for name, value in values.items():
        setattr(args, name, value)
    return args


def run_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with what the run's own flags change (``--keep-work``, ``--hwaccel``)."""
    changes: dict[str, object] = {}
    if args.keep_work:
        changes["keep_work_files"] = True
    if args.hwaccel is not None:
        changes["hwaccel"] = args.hwaccel
    return settings.model_copy(update=changes) if changes else settings


def said_codecs(settings: Settings) -> Codecs:
    """The run's video codecs, said on stderr where NVDEC/NVENC were asked for."""
    from facefleet.modes.embedded import job_codecs

    codecs = job_codecs(settings)
    if settings.hwaccel == "auto":
        print(f"facefleet: video codecs (--hwaccel auto): {codecs.reason}", file=sys.stderr)
    return codecs


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sandbox import drop_spare, start_spare

    start_spare()  # the target's prober starts (and loads FFmpeg) while the engine loads here
    try:
        return _handle(args, settings)
    finally:
        drop_spare()


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    # the engine is loaded by the command that runs it, not by `facefleet --help`
    import time

    from facefleet.config.errors import InvalidSubmission, MediaRefused
    from facefleet.config.options import OptionsError
    from facefleet.modes.embedded import EmbeddedJobError, JobRequest, run_job
    from facefleet.modes.local_children import stop_on_sigterm
    from facefleet.provenance.signing import UNSIGNED, ProvenanceConfigError, signing_files
    from facefleet.storage.base import StorageError
    from pipeline.errors import PipelineError

    targets = args.target if isinstance(args.target, list) else [args.target]
    if len(targets) > 1 or targets[0].is_dir():
        from cli.commands.run_batch import handle_batch

        return handle_batch(args, settings, targets)
    args.target = targets[0]
    began = time.monotonic()
    try:
        if args.workers < 1:
            raise OptionsError("--workers must be at least 1")
        if args.container is None and args.output.suffix.lower() in (".mov", ".mkv"):
            args.container = args.output.suffix.lower()[1:]  # the output's name says which
        options = options_from_args(args, settings)
        if options.processors and _pick_present_detector(args, settings):
            options = options_from_args(args, settings)
        _warn_ignored(args, options.processors)
        request = JobRequest(
            target=args.target,
            sources=tuple(args.source),
            reference=args.reference,
            output=args.output,
            options=options,
        )
        settings = run_settings(settings, args)
        progress = not args.no_progress
        codecs = said_codecs(settings)
        with stop_on_sigterm(), FrameBar(enabled=progress) as bar:
            result = run_job(
                settings,
                request,
                workers=args.workers,
                on_progress=bar.update,
                on_phase=bar.phase,
                codecs=codecs,
            )
    except (
        OptionsError,
        InvalidSubmission,
        MediaRefused,
        EmbeddedJobError,
        PipelineError,
        StorageError,
        ProvenanceConfigError,
    ) as exc:
        print(f"facefleet: {with_flag(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk, the home folder, the output folder
        where = f": {exc.filename}" if exc.filename else ""
        print(f"facefleet: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facefleet: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    seconds = time.monotonic() - began
    fps = result.frames / seconds if seconds > 0 else 0.0
    print(
        f"done: {result.frames} frames in {seconds:.1f} s ({fps:.1f} frame/s) -> {args.output}",
        file=sys.stderr,
    )
    if result.output and result.output.get("padded"):
        print(f"facefleet: note: {result.output['padded']}", file=sys.stderr)
    if result.quality is not None:  # the run's summary: the quality gate's figures
        print(quality_line(result.quality), file=sys.stderr)
    if result.content_policy and result.content_policy.get("flagged"):
        print(
            f"facefleet: flagged by the content policy: {json.dumps(result.content_policy)}", file=sys.stderr
        )
    if signing_files(settings) is None:  # said once the job is done: a refusal's message stays alone
        print(f"facefleet: warning: {UNSIGNED}", file=sys.stderr)
    print(args.output)
    return 0


def _pick_present_detector(args: argparse.Namespace, settings: Settings) -> bool:
    """No --face-detector given and the default one is not here, another one is: use it, and
    say so (the job's id changes with it, as with the flag); returns whether it did."""
    if args.face_detector is not None:
        return False
    from pipeline.models.store import ModelStore

    store = ModelStore.for_runtime(settings.runtime())
    default = str(JOB_FLAGS["face_detector"].default)
    if store.find(store.spec(default))[0] is not None:
        return False
    for name in DETECTORS:
        path = store.find(store.spec(name))[0]
        if path is not None:
            print(
                f"facefleet: note: the default detector {default} is not here; using {name} ({path}). "
                f"--face-detector chooses; `facefleet models download {default}` fetches it",
                file=sys.stderr,
            )
            args.face_detector = name
            return True
    return False


def _warn_ignored(args: argparse.Namespace, processors: list[str]) -> None:
    """Say so when an input the user gave is not used by the chain they chose."""
    if args.source and "face_swapper" not in processors:
        print("facefleet: warning: --source is used only by face_swapper; it is ignored", file=sys.stderr)
    reference = "reference" in (
        getattr(args, "face_selector", None),
        getattr(args, "face_selector_mode", None),
    )
    if args.reference and not reference:
        print(
            "facefleet: warning: --reference is used only with --face-selector(-mode) reference; it is ignored",
            file=sys.stderr,
        )
