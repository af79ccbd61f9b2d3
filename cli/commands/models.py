"""``facefleet models list|download|verify``: the model registry from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from cli.commands.jobs import human_bytes
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
    from cli.commands.jobs import print_table

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
    """Each model's path on stdout (for scripts); its progress on stderr: a bar on a
    terminal, a line per tenth otherwise."""
    try:
        store = _store(settings)
        for name in _names(store, args):
            with DownloadProgress(name, sys.stderr.isatty()) as progress:
                path = store.download(name, progress)
            print(f"{name}: sha256 verified, {path}", file=sys.stderr)
            print(f"{name}\t{path}")
    except PipelineError as exc:
        return _fail(exc)
    return 0


# the bar of `facefleet run` over bytes: percent, bar, done/total, elapsed<left, rate
_BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
PLAIN_STEP = 10  # percent between plain lines
PLAIN_UNKNOWN_STEP = 64 * 1024**2  # bytes between plain lines where the size is unknown


class DownloadProgress:
    """Hears of a model's download (``ModelStore.download``'s progress): on a terminal a tqdm
    bar over bytes, else plain lines (where from, then every tenth); a new source (the
    mirror failed, the next one is tried) starts afresh."""

    def __init__(self, name: str, terminal: bool) -> None:
        self.name, self.terminal = name, terminal
        self._url = ""
        self._bar: Any = None
        self._said = 0  # the last step a plain line told

    def __call__(self, url: str, done: int, total: int | None) -> None:
        if url != self._url:
            self.close()
            self._url, self._said = url, 0
            self._start(url, total)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        step = done * 100 // total // PLAIN_STEP if total else done // PLAIN_UNKNOWN_STEP
        if step > self._said:
            self._said = step
            share = f"{done * 100 // total}% ({human_bytes(done)} of {human_bytes(total)})" if total else ""
            print(f"{self.name}: {share or human_bytes(done)}", file=sys.stderr, flush=True)

    def _start(self, url: str, total: int | None) -> None:
        size = f" ({human_bytes(total)})" if total else ""
        print(f"{self.name}: from {_shown(url)}{size}", file=sys.stderr, flush=True)
        if self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=self.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                bar_format=_BAR_FORMAT,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> DownloadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shown(url: str) -> str:
    """``url`` without a user or password it may carry."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname or "").geturl() if "@" in parts.netloc else url


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
