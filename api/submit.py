"""POST /v1/tasks: stream the inputs to the bucket, check them, then write the row.

Nothing is left behind for a refused submission: the objects already stored under the new
task's prefix are deleted before the error is answered, and the row is written last.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.http import parse_options_header

from api.problems import Problem
from api.uploads import MultipartStream, Part, TeeReader
from facefleet import keys
from facefleet.db import Task, new_id
from facefleet.distributed import Services
from facefleet.failures import scrub
from facefleet.jobs import create_task
from facefleet.options import JobOptions, OptionsError, check_plan_size, parse_options
from facefleet.scratch import scratch_dir
from pipeline.errors import PipelineError
from pipeline.plan import frame_range
from pipeline.probe import probe

log = logging.getLogger(__name__)

MAX_SOURCES = 8
MAX_OPTIONS_BYTES = 64 * 1024
# processors that cannot run without a source face
NEEDS_SOURCE = frozenset({"face_swapper"})


@dataclass
class Upload:
    task_id: str
    target_key: str | None = None
    target_name: str | None = None
    target_bytes: int = 0
    source_keys: list[str] = field(default_factory=list)
    reference_key: str | None = None
    options_text: str | None = None


def find_by_idempotency_key(svc: Services, key: str) -> Task | None:
    with svc.sessions() as session:
        task: Task | None = session.scalar(select(Task).where(Task.idempotency_key == key))
        return task


def submit(svc: Services, idempotency_key: str | None) -> tuple[Task, bool]:
    """Returns (task, created). ``created`` is False when the idempotency key named a task
    that already exists."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
        raise Problem(400, "Idempotency-Key must be 1 to 200 characters")
    if idempotency_key and (existing := find_by_idempotency_key(svc, idempotency_key)):
        return existing, False
    upload = Upload(task_id=new_id())
    with scratch_dir(svc.ctx.scratch, "upload") as tmp:
        target_copy = tmp / "target"
        try:
            _receive(svc, upload, target_copy)
            options = _check(upload, svc.settings.job_defaults())
            frames = _probe_target(target_copy, upload.target_name or "target", options)
            check_plan_size(
                options,
                frames,
                max_chunks=svc.settings.max_chunks_per_task,
                max_segments=svc.settings.max_segments_per_task,
            )
            task = _create(svc, upload, options, idempotency_key)
        except BaseException:
            svc.storage.delete_prefix(keys.task_prefix(upload.task_id))
            raise
    if task is None:  # lost a race on the same idempotency key
        assert idempotency_key is not None
        svc.storage.delete_prefix(keys.task_prefix(upload.task_id))
        winner = find_by_idempotency_key(svc, idempotency_key)
        assert winner is not None
        return winner, False
    return task, True


def _form(svc: Services) -> MultipartStream:
    mimetype, params = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data":
        raise Problem(415, "send the task as multipart/form-data (fields target, source, reference, options)")
    boundary = params.get("boundary")
    if not boundary:
        raise Problem(400, "the multipart Content-Type has no boundary")
    return MultipartStream(request.stream, boundary.encode(), max_parts=MAX_SOURCES + 8)


def _receive(svc: Services, upload: Upload, target_copy: Path) -> None:
    limits = svc.settings
    for part in _form(svc).parts():
        if part.name == "target":
            _need_file(part)
            if upload.target_key:
                raise Problem(400, "only one target may be sent")
            upload.target_key, upload.target_name = keys.target_key(upload.task_id), part.filename
            with open(target_copy, "wb") as copy:  # probed below, then deleted
                upload.target_bytes = svc.storage.put_stream(
                    upload.target_key,
                    TeeReader(part.body, copy),  # type: ignore[arg-type]
                    max_bytes=limits.max_upload_bytes,
                )
        elif part.name == "source":
            _need_file(part)
            if len(upload.source_keys) >= MAX_SOURCES:
                raise Problem(400, f"at most {MAX_SOURCES} source images may be sent")
            key = keys.source_key(upload.task_id, len(upload.source_keys))
            svc.storage.put_stream(key, part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
            upload.source_keys.append(key)
        elif part.name == "reference":
            _need_file(part)
            upload.reference_key = keys.reference_key(upload.task_id)
            svc.storage.put_stream(upload.reference_key, part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
        elif part.name == "options":
            upload.options_text = part.body.read_limited(MAX_OPTIONS_BYTES).decode("utf-8", "replace")
        else:
            raise Problem(
                400, f"unknown form field {part.name!r} (expected target, source, reference, options)"
            )


def _need_file(part: Part) -> None:
    if part.filename is None:
        raise Problem(400, f"field {part.name!r} must be a file")


def _check(upload: Upload, defaults: dict[str, Any]) -> JobOptions:
    if upload.target_key is None:
        raise Problem(400, "missing field: target (the video to process)", "missing-field", field="target")
    raw: Any = {}
    if upload.options_text and upload.options_text.strip():
        try:
            raw = json.loads(upload.options_text)
        except json.JSONDecodeError as exc:
            raise Problem(400, f"options is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise Problem(400, "options must be a JSON object")
    options = parse_options(raw, defaults)
    if NEEDS_SOURCE & set(options.processors) and not upload.source_keys:
        raise Problem(
            400,
            "missing field: source (the face_swapper needs a source face image)",
            "missing-field",
            field="source",
        )
    if options.face_selector == "reference" and upload.reference_key is None:
        raise OptionsError("face_selector: 'reference' needs a reference image (field reference)")
    return options


def _probe_target(path: Path, name: str, options: JobOptions) -> int:
    """Refuse a target that is not a usable video or range (-> 422); returns the number of
    frames the task will process."""
    try:
        video = probe(path)
        start, end = frame_range(video.frame_count, options.trim_start, options.trim_end)
    except PipelineError as exc:  # name the user's file, not the scratch copy
        raise type(exc)(scrub(str(exc), {path.name: name})) from None
    return end - start


def _create(svc: Services, upload: Upload, options: JobOptions, idempotency_key: str | None) -> Task | None:
    assert upload.target_key is not None
    try:
        return create_task(
            svc.ctx,
            task_id=upload.task_id,
            target_key=upload.target_key,
            target_name=upload.target_name,
            source_keys=upload.source_keys,
            reference_key=upload.reference_key,
            options=options,
            idempotency_key=idempotency_key,
            bytes_in=upload.target_bytes,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        return None
