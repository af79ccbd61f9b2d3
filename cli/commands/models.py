"""``facefleet models list|download|verify``: the model registry from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from cli.option_flags import HelpFormatter
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from facefleet.config.settings import Settings
    from pipeline.models.store import ModelStore

DESCRIPTION = """\
The face models, each declared once with its file, size and sha256; a file is used only
once its sha256 matches. Where a model is looked for, in order: FACEFLEET_MODEL_DIR
(default ~/.cache/facefleet/models), the folders and URLs of FACEFLEET_MODEL_MIRRORS
(default: a shared/models folder beside the project's clone), then its official source.

Declare your own models, or your copy of one without a published sha256 (gfpgan_1.4), in
a JSON manifest named by FACEFLEET_MODEL_MANIFEST:

  {"models": [{"name": "gfpgan_1.4", "kind": "gfpgan", "file": "gfpgan_1.4.onnx",
               "sha256": "<64 hex digits of your file>", "path": "/models/gfpgan_1.4.onnx"}]}

name, kind (scrfd, yunet, arcface, inswapper, gfpgan), file and sha256 are required; path
(absolute, or relative to the manifest), size, sources, inputs and note are optional.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, download or verify the face models",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every declared model and whether a verified copy is here")
    listing.set_defaults(handler=handle_list)
    for name, handler, text in (
        (
            "download",
            handle_download,
            "fetch models into the model directory (mirrors, then official sources)",
        ),
        ("verify", handle_verify, "check the sha256 of the local copies"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("names", nargs="*", help="model names (default: every model with a known hash)")
        action.set_defaults(handler=handler)


def _store(settings: Settings) -> ModelStore:
    from pipeline.models.store import ModelStore

    return ModelStore.for_runtime(settings.runtime())


def _names(store: ModelStore, args: argparse.Namespace) -> list[str]:
    if args.names:
        for name in args.names:
            store.spec(name)  # unknown names fail here, before any work
        return list(args.names)
    return [spec.name for spec in store.registry if spec.sha256 is not None]


def _fail(exc: Exception) -> int:
    print(f"facefleet: {' '.join(str(exc).split())}", file=sys.stderr)
    return 1


def handle_list(args: argparse.Namespace, settings: Settings) -> int:
    from cli.commands.jobs import human_bytes, print_table

    try:
        store = _store(settings)
    except PipelineError as exc:
        return _fail(exc)
    rows, missing = [], []
    for spec in store.registry:
        path, problems = store.find(spec)
        if path is not None:
            where, verified = str(path), "sha256 ok"
        elif spec.sha256 is None:
            where, verified = "-", "no sha256 declared"
            missing.append(spec)
        else:
            where, verified = "missing", "does not match" if problems else "-"
            missing.append(spec)
        size = "?" if spec.size is None else human_bytes(spec.size)
        rows.append((spec.name, spec.kind, size, where, verified))
    print_table(("NAME", "KIND", "SIZE", "PRESENT (WHERE)", "VERIFIED"), rows)
    runtime = settings.runtime()
    mirrors = ", ".join(runtime.model_mirrors) or "none (FACEFLEET_MODEL_MIRRORS)"
    print(f"\nmodel directory: {runtime.model_dir} (FACEFLEET_MODEL_DIR); mirrors: {mirrors}")
    if missing:
        print(
            "to make a missing model present: `facefleet models download NAME` (from a mirror or its "
            "official source), or put its file in the model directory or a mirror folder; a model "
            "without a declared sha256 (gfpgan_1.4) must be declared in a manifest "
            "(FACEFLEET_MODEL_MANIFEST, see `facefleet models --help`)"
        )
    return 0


def handle_download(args: argparse.Namespace, settings: Settings) -> int:
    try:
        store = _store(settings)
        for name in _names(store, args):
            print(f"{name}\t{store.download(name)}")
    except PipelineError as exc:
        return _fail(exc)
    return 0


def handle_verify(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.models.store import check_file

    try:
        store = _store(settings)
        names = _names(store, args)
    except PipelineError as exc:
        return _fail(exc)
    failures = 0
    for name in names:
        spec = store.spec(name)
        found = [p for p in store.local_candidates(spec) if p.is_file()]
        if not found:
            print(f"{name}\tmissing", file=sys.stderr)
            failures += 1
        for path in found:
            problem = check_file(spec, path)
            if problem is None:
                print(f"{name}\tok\t{path}")
            else:
                print(f"{name}\tbad\t{problem}", file=sys.stderr)
                failures += 1
    if failures:
        print(f"facefleet: {failures} model file(s) missing or not matching their sha256", file=sys.stderr)
    return 1 if failures else 0
