"""``facefleet run --target a.mp4 --target b.mp4 ...`` or ``--target FOLDER``: the embedded
batch (``facefleet.modes.embedded_batch``), one line per item as it ends and a last line of
counts; the exit status is 1 when any item failed. The same command again resumes it: the
items that succeeded are not redone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facefleet.config.settings import Settings


def handle_batch(args: argparse.Namespace, settings: Settings, paths: list[Path]) -> int:
    from cli.commands.api_calls import ClientError
    from cli.commands.batch_client import targets_of
    from cli.commands.run import run_settings, said_codecs
    from cli.option_flags import options_from_args
    from cli.progress import FrameBar
    from facefleet.config.options import OptionsError
    from facefleet.modes.embedded import EmbeddedJobError, JobRequest
    from facefleet.modes.embedded_batch import ItemResult, output_names, run_batch

    try:
        if args.workers < 1:
            raise OptionsError("--workers must be at least 1")
        targets = targets_of(paths)
        for path in (*args.source, *([args.reference] if args.reference else [])):
            if not path.is_file():
                raise ClientError(f"no such file: {path}")
        if args.output.exists() and not args.output.is_dir():
            raise ClientError(f"a batch's --output is a folder, and {args.output} is a file")
        args.output.mkdir(parents=True, exist_ok=True)
        options = options_from_args(args, settings)
        outputs = output_names(targets, args.output, options.container)
        settings = run_settings(settings, args)
        requests = [
            JobRequest(target, tuple(args.source), args.reference, output, options)
            for target, output in zip(targets, outputs, strict=True)
        ]
    except (ClientError, OptionsError, EmbeddedJobError) as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"facefleet: {exc.strerror or exc}: {exc.filename or args.output}", file=sys.stderr)
        return 1

    codecs = said_codecs(settings)  # before the first bar
    bar = FrameBar(enabled=not args.no_progress)  # one per item, over its frames

    def line(result: ItemResult) -> None:
        nonlocal bar
        bar.__exit__()
        bar = FrameBar(enabled=not args.no_progress)
        said = {"done": "done before, not redone", "succeeded": "succeeded"}.get(result.state)
        if said:
            print(f"{result.target.name}: {said} -> {result.output}", flush=True)
        else:
            print(f"{result.target.name}: failed: {result.error}", flush=True)

    try:
        results = run_batch(
            settings,
            requests,
            workers=args.workers,
            on_item=line,
            on_progress=lambda d, t: bar.update(d, t),
            codecs=codecs,
        )
    except KeyboardInterrupt:
        bar.__exit__()
        print("facefleet: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    failed = sum(r.state == "failed" for r in results)
    print(f"{len(results) - failed} of {len(results)} items succeeded, {failed} failed", flush=True)
    return 1 if failed else 0
