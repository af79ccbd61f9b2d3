"""The HTTP side of POST /v1/batches: the body read as it streams in, each target submitted
as its part arrives (the batch is never held whole, in memory or on disk), through the one
submission pipeline (``facefleet.task.submission.submit``).

Multipart: ``options``, ``source`` and ``reference`` parts first (they are small, kept in
scratch files and stored again under each item's keys), then one ``target`` part per item.
JSON: ``{"target_url": [...], "source_url": [...], "options": {...}}``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import request

from api.problems import Problem
from api.submit import MAX_OPTIONS_BYTES, MAX_URL_BYTES, _form, _is_json, _need_file
from api.uploads import Part, TeeReader
from facefleet.config.options import JobOptions, parse_options
from facefleet.modes.distributed import Services
from facefleet.records.db import Task
from facefleet.storage.base import UploadTooLarge
from facefleet.task.submission import MAX_SOURCES, Draft, Receive, check_webhook_url

# submits one item whose inputs ``receive`` stores (the caller adds tenant, batch, admission)
SubmitItem = Callable[[Receive], Task]
# the batch's own row, once its options are known (before the first item)
OpenBatch = Callable[[dict[str, Any]], None]
# one item: its name and a thunk that submits it
AddItem = Callable[[str | None, Callable[[], Task]], None]


def receive_batch(
    svc: Services,
    scratch: Path,
    open_batch: Callable[[str | None], None],
    add_item: AddItem,
    submit_item: SubmitItem,
) -> None:
    if _is_json():
        _json_batch(svc, open_batch, add_item, submit_item)
    else:
        _form_batch(svc, scratch, open_batch, add_item, submit_item)


def check_options(svc: Services, options_text: str | None) -> JobOptions:
    """The batch's options, checked once before any item (a bad option refuses the batch)."""
    try:
        raw = json.loads(options_text) if options_text and options_text.strip() else {}
    except json.JSONDecodeError as exc:
        raise Problem(400, f"options is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise Problem(400, "options must be a JSON object")
    options = parse_options(raw, svc.settings.job_defaults())
    check_webhook_url(svc.settings, options)
    return options


def _form_batch(
    svc: Services,
    scratch: Path,
    open_batch: Callable[[str | None], None],
    add_item: AddItem,
    submit_item: SubmitItem,
) -> None:
    options_text: str | None = None
    sources: list[Path] = []
    reference: Path | None = None
    opened = False
    for part in _form().parts():
        if part.name == "target":
            _need_file(part)
            if not opened:
                open_batch(options_text)
                opened = True
            receive = _item(svc, part, options_text, sources, reference)
            add_item(part.filename, lambda receive=receive: submit_item(receive))  # type: ignore[misc]
            continue
        if opened:
            raise Problem(
                400,
                f"field {part.name!r} after a target: send options, source and reference before the targets",
            )
        if part.name == "options":
            options_text = part.body.read_limited(MAX_OPTIONS_BYTES).decode("utf-8", "replace")
        elif part.name in ("source", "reference"):
            _need_file(part)
            if part.name == "source" and len(sources) >= MAX_SOURCES:
                raise Problem(400, f"at most {MAX_SOURCES} source images may be sent")
            path = scratch / f"{part.name}-{len(sources)}"
            _spool(part, path, svc.settings.max_source_bytes)
            if part.name == "source":
                sources.append(path)
            else:
                reference = path
        else:
            raise Problem(
                400,
                f"unknown form field {part.name!r} (expected options, source, reference, then target parts)",
            )
    if not opened:
        raise Problem(400, "missing field: target (one part per video)", "missing-field", field="target")


def _spool(part: Part, path: Path, max_bytes: int) -> None:
    with open(path, "wb") as out:
        shutil.copyfileobj(part.body, out)  # type: ignore[misc]
    if path.stat().st_size > max_bytes:
        raise Problem(413, f"{part.name} is larger than {max_bytes} bytes")


def _item(
    svc: Services, part: Part, options_text: str | None, sources: list[Path], reference: Path | None
) -> Receive:
    """Stores one item's inputs: the shared images again under its keys, and this target part
    straight to the bucket (a copy in scratch, for the probe)."""

    def receive(draft: Draft, scratch: Path) -> None:
        draft.options_text = options_text
        for path in sources:
            svc.storage.put_file(draft.add_source(), path)
        if reference is not None:
            draft.reference_key = draft.keys.reference
            svc.storage.put_file(draft.reference_key, reference)
        key = draft.add_target(part.filename)
        copy_path = scratch / "target"
        with open(copy_path, "wb") as copy:
            try:
                body: Any = TeeReader(part.body, copy)  # read like a file
                draft.target_bytes = svc.storage.put_stream(
                    key, body, max_bytes=svc.settings.max_upload_bytes
                )
            except UploadTooLarge as exc:  # this item's refusal: the next part goes on
                from facefleet.config.errors import MediaRefused

                raise MediaRefused(str(exc)) from None
        draft.target_copy = copy_path

    return receive


def _json_batch(
    svc: Services, open_batch: Callable[[str | None], None], add_item: AddItem, submit_item: SubmitItem
) -> None:
    raw = request.stream.read(MAX_OPTIONS_BYTES + 1)
    if len(raw) > MAX_OPTIONS_BYTES:
        raise Problem(413, f"a JSON batch may be at most {MAX_OPTIONS_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(400, "the JSON body must be an object")
    unknown = set(body) - {"target_url", "source_url", "options"}
    if unknown:
        raise Problem(400, f"unknown field {sorted(unknown)[0]!r} (expected target_url, source_url, options)")
    targets = body.get("target_url")
    if (
        not isinstance(targets, list)
        or not targets
        or not all(isinstance(t, str) and len(t) <= MAX_URL_BYTES for t in targets)
    ):
        raise Problem(400, "target_url must be a non-empty list of URLs", "missing-field", field="target_url")
    sources = body.get("source_url", [])
    sources = sources if isinstance(sources, list) else [sources]
    if not all(isinstance(s, str) for s in sources):
        raise Problem(400, "source_url must be a string (a URL) or a list of them")
    options_text = json.dumps(body["options"]) if "options" in body else None
    open_batch(options_text)
    for url in targets:

        def receive(draft: Draft, _scratch: Path, url: str = url) -> None:
            draft.add_url(svc.settings, "target_url", url)
            for source in sources:
                draft.add_url(svc.settings, "source_url", source)
            draft.options_text = options_text

        add_item(url.rsplit("/", 1)[-1] or None, lambda receive=receive: submit_item(receive))  # type: ignore[misc]
