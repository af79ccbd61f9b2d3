"""The HTTP side of POST /v1/tasks: the request's body read as it streams in, its files
stored under the new task's keys. What is checked and written, and the clean-up of a refused
submission, is the core's (``facefleet.task.submission``)."""

from __future__ import annotations

import json
from pathlib import Path

from flask import request
from werkzeug.http import parse_options_header

from api.problems import Problem
from api.uploads import MultipartStream, Part, TeeReader
from facefleet.config.inputs import load_json
from facefleet.modes.distributed import Services
from facefleet.task.submission import MAX_SOURCES, Draft, Receive

MAX_OPTIONS_BYTES = 64 * 1024
MAX_URL_BYTES = 8 * 1024


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= 150:
        raise Problem(400, "Idempotency-Key must be 1 to 150 characters")


def receiver(svc: Services) -> Receive:
    """Reads this request's body into a submission: a multipart form or a JSON object."""

    def receive(draft: Draft, scratch: Path) -> None:
        if _is_json():
            _receive_json(svc, draft)
        else:
            _receive_form(svc, draft, scratch / "target")

    return receive


def _is_json() -> bool:
    return parse_options_header(request.headers.get("Content-Type", ""))[0] == "application/json"


def _form() -> MultipartStream:
    mimetype, params = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data":
        raise Problem(
            415,
            "send the task as multipart/form-data (fields target or target_url, source or source_url, "
            "reference, options) or as JSON (target_url, source_url, options)",
        )
    boundary = params.get("boundary")
    if not boundary:
        raise Problem(400, "the multipart Content-Type has no boundary")
    return MultipartStream(request.stream, boundary.encode(), max_parts=MAX_SOURCES + 8)


def _receive_form(svc: Services, draft: Draft, target_copy: Path) -> None:
    """Each file part straight to the bucket; the target also to ``target_copy``, for the probe."""
    limits, storage = svc.settings, svc.storage
    for part in _form().parts():
        if part.name == "target":
            _need_file(part)
            key = draft.add_target(part.filename)
            with open(target_copy, "wb") as copy:  # probed, then deleted with the scratch folder
                body = TeeReader(part.body, copy)
                draft.target_bytes = storage.put_stream(key, body, max_bytes=limits.max_upload_bytes)  # type: ignore[arg-type]
            draft.target_copy = target_copy
        elif part.name == "source":
            _need_file(part)
            storage.put_stream(draft.add_source(), part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
        elif part.name == "reference":
            _need_file(part)
            draft.reference_key = draft.keys.reference
            storage.put_stream(draft.reference_key, part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
        elif part.name == "options":
            draft.options_text = part.body.read_limited(MAX_OPTIONS_BYTES).decode("utf-8", "replace")
        elif part.name in ("target_url", "source_url"):
            url = part.body.read_limited(MAX_URL_BYTES).decode("utf-8", "replace")
            draft.add_url(limits, part.name, url)
        else:
            raise Problem(
                400,
                f"unknown form field {part.name!r} (expected target, target_url, source, source_url, "
                "reference, options)",
            )


def _receive_json(svc: Services, draft: Draft) -> None:
    """A JSON body: ``{"target_url": ..., "source_url": [...], "options": {...}}``."""
    raw = request.stream.read(MAX_OPTIONS_BYTES + 1)
    if len(raw) > MAX_OPTIONS_BYTES:
        raise Problem(413, f"a JSON submission may be at most {MAX_OPTIONS_BYTES} bytes")
    body = load_json(raw, "the body")
    if not isinstance(body, dict):
        raise Problem(400, "the JSON body must be an object")
    unknown = set(body) - {"target_url", "source_url", "options"}
    if unknown:
        raise Problem(400, f"unknown field {sorted(unknown)[0]!r} (expected target_url, source_url, options)")
    if "target_url" not in body:
        raise Problem(
            400, "missing field: target_url (the video to process)", "missing-field", field="target_url"
        )
    sources = body.get("source_url", [])
    for name, values in (
        ("target_url", [body["target_url"]]),
        ("source_url", sources if isinstance(sources, list) else [sources]),
    ):
        for value in values:
            if not isinstance(value, str):
                raise Problem(400, f"{name} must be a string (a URL)")
            draft.add_url(svc.settings, name, value)
    if "options" in body:
        draft.options_text = json.dumps(body["options"])


def _need_file(part: Part) -> None:
    if part.filename is None:
        raise Problem(400, f"field {part.name!r} must be a file")
