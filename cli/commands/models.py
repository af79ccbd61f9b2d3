"""``facefleet models list|download|verify``: the model registry from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from facefleet.config.settings import Settings
    from pipeline.models.store import ModelStore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, download or verify the face models")
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
    try:
        store = _store(settings)
    except PipelineError as exc:
        return _fail(exc)
    for spec in store.registry:
        path, _ = store.find(spec)
        state = f"ok {path}" if path is not None else ("no-hash" if spec.sha256 is None else "missing")
        size = "?" if spec.size is None else str(spec.size)
        print(f"{spec.name}\t{spec.kind}\t{spec.file}\t{size}\t{spec.sha256 or 'unknown'}\t{state}")
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
