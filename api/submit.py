"""POST /v1/tasks: stream the inputs to the bucket, check them, then write the row.

Nothing is left behind for a refused submission: the objects already stored under the new
task's prefix are deleted before the error is answered, and the row is written last.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from flask import request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.http import parse_options_header

from api.problems import Problem
from api.uploads import MultipartStream, Part, TeeReader
from facefleet import keys
from facefleet.db import Task, new_id
from facefleet.distributed import Services
from facefleet.egress import check_url, fetch, parse_s3_url
from facefleet.failures import scrub
from facefleet.jobs import create_task
from facefleet.options import JobOptions, OptionsError, check_plan_size, parse_options
from facefleet.orphans import clear_pending, record_pending
from facefleet.scratch import scratch_dir
from pipeline.errors import PipelineError
from pipeline.images import check_image
from pipeline.plan import frame_range
from pipeline.sandbox import probe_untrusted

log = logging.getLogger(__name__)

MAX_SOURCES = 8
MAX_OPTIONS_BYTES = 64 * 1024
MAX_URL_BYTES = 8 * 1024
# processors that cannot run without a source face
NEEDS_SOURCE = frozenset({"face_swapper"})


@dataclass
class Upload:
    task_id: str
    tenant: str
    target_key: str | None = None
    target_name: str | None = None
    target_bytes: int = 0
    source_keys: list[str] = field(default_factory=list)
    reference_key: str | None = None
    options_text: str | None = None
    target_url: str | None = None
    source_urls: list[str] = field(default_factory=list)

    @property
    def keys(self) -> keys.TaskKeys:
        return keys.TaskKeys(self.task_id, self.tenant)


def find_by_idempotency_key(svc: Services, key: str) -> Task | None:
    with svc.sessions() as session:
        task: Task | None = session.scalar(select(Task).where(Task.idempotency_key == key))
        return task


def submit(
    svc: Services, idempotency_key: str | None, tenant: str, admit: Callable[[JobOptions], None]
) -> tuple[Task, bool]:
    """Returns (task, created). ``created`` is False when the idempotency key named a task
    of this tenant that already exists (keys are the tenant's own: stored as ``tenant:key``).
    ``admit`` refuses (raises) a task of these options when the fleet has no room for it."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 150:
        raise Problem(400, "Idempotency-Key must be 1 to 150 characters")
    if idempotency_key:
        idempotency_key = f"{tenant}:{idempotency_key}"
        if existing := find_by_idempotency_key(svc, idempotency_key):
            return existing, False
    upload = Upload(task_id=new_id(), tenant=tenant)
    record_pending(svc.ctx, upload.keys)  # before any byte is stored: a killed API's are swept
    with scratch_dir(svc.ctx.scratch, "upload") as tmp:
        target_copy = tmp / "target"
        try:
            if _is_json():
                _receive_json(svc, upload)
            else:
                _receive(svc, upload, target_copy)
            _fetch_urls(svc, upload, target_copy, tmp)
            options = _check(upload, svc.settings.job_defaults())
            admit(options)  # before the probe: a refusal costs no sandbox
            frames = _probe_target(svc, target_copy, upload.target_name or "target", options)
            _check_images(svc, upload, tmp)
            check_plan_size(
                options,
                frames,
                max_chunks=svc.settings.max_chunks_per_task,
                max_segments=svc.settings.max_segments_per_task,
            )
            task = _create(svc, upload, options, idempotency_key, frames)
        except BaseException:
            svc.storage.delete_prefix(upload.keys.prefix)
            clear_pending(svc.ctx, upload.task_id)
            raise
    if task is None:  # lost a race on the same idempotency key
        assert idempotency_key is not None
        svc.storage.delete_prefix(upload.keys.prefix)
    clear_pending(svc.ctx, upload.task_id)  # the row, or no files: nothing for the sweep
    if task is None:
        assert idempotency_key is not None
        winner = find_by_idempotency_key(svc, idempotency_key)
        assert winner is not None
        return winner, False
    return task, True


def _is_json() -> bool:
    return parse_options_header(request.headers.get("Content-Type", ""))[0] == "application/json"


def _form(svc: Services) -> MultipartStream:
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


def _receive(svc: Services, upload: Upload, target_copy: Path) -> None:
    limits = svc.settings
    for part in _form(svc).parts():
        if part.name == "target":
            _need_file(part)
            if upload.target_key:
                raise Problem(400, "only one target may be sent")
            upload.target_key, upload.target_name = upload.keys.target, part.filename
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
            key = upload.keys.source(len(upload.source_keys))
            svc.storage.put_stream(key, part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
            upload.source_keys.append(key)
        elif part.name == "reference":
            _need_file(part)
            upload.reference_key = upload.keys.reference
            svc.storage.put_stream(upload.reference_key, part.body, max_bytes=limits.max_source_bytes)  # type: ignore[arg-type]
        elif part.name == "options":
            upload.options_text = part.body.read_limited(MAX_OPTIONS_BYTES).decode("utf-8", "replace")
        elif part.name in ("target_url", "source_url"):
            _add_url(svc, upload, part.name, part.body.read_limited(MAX_URL_BYTES).decode("utf-8", "replace"))
        else:
            raise Problem(
                400,
                f"unknown form field {part.name!r} (expected target, target_url, source, source_url, "
                "reference, options)",
            )


def _receive_json(svc: Services, upload: Upload) -> None:
    """A JSON body: ``{"target_url": ..., "source_url": [...], "options": {...}}``."""
    raw = request.stream.read(MAX_OPTIONS_BYTES + 1)
    if len(raw) > MAX_OPTIONS_BYTES:
        raise Problem(413, f"a JSON submission may be at most {MAX_OPTIONS_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
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
            _add_url(svc, upload, name, value)
    if "options" in body:
        upload.options_text = json.dumps(body["options"])


def _add_url(svc: Services, upload: Upload, field_name: str, url: str) -> None:
    """Record an input URL, refused at once (422) when the guard would refuse to fetch it."""
    url = url.strip()
    limit = svc.settings.max_upload_bytes if field_name == "target_url" else svc.settings.max_source_bytes
    check_url(url, svc.settings.egress_policy(limit), what=field_name)
    if field_name == "target_url":
        if upload.target_url or upload.target_key:
            raise Problem(400, "only one target may be sent (target or target_url)")
        upload.target_url = url
    else:
        if len(upload.source_keys) + len(upload.source_urls) >= MAX_SOURCES:
            raise Problem(400, f"at most {MAX_SOURCES} source images may be sent")
        upload.source_urls.append(url)


def _fetch_urls(svc: Services, upload: Upload, target_copy: Path, scratch: Path) -> None:
    """Fetch the inputs given by URL (through the egress guard) into the bucket."""
    if upload.target_url:
        if upload.target_key:
            raise Problem(400, "only one target may be sent (target or target_url)")
        upload.target_key = upload.keys.target
        upload.target_name = _url_name(upload.target_url) or "target"
        upload.target_bytes = _fetch(
            svc, upload.target_url, "target_url", target_copy, svc.settings.max_upload_bytes
        )
        svc.storage.put_file(upload.target_key, target_copy)
    for url in upload.source_urls:
        key = upload.keys.source(len(upload.source_keys))
        path = scratch / f"source-{len(upload.source_keys)}"
        _fetch(svc, url, "source_url", path, svc.settings.max_source_bytes)
        svc.storage.put_file(key, path)
        upload.source_keys.append(key)


def _fetch(svc: Services, url: str, what: str, dest: Path, max_bytes: int) -> int:
    policy = svc.settings.egress_policy(max_bytes)
    if url.startswith("s3://"):
        bucket, key = parse_s3_url(url, policy.allowed_s3_buckets, what=what)
        return svc.storage.get_external(bucket, key, dest, max_bytes)
    with open(dest, "wb") as out:
        return fetch(url, out, policy, what=what).size


def _url_name(url: str) -> str | None:
    name = PurePosixPath(urlsplit(url).path).name
    return name[:200] or None


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


def _probe_target(svc: Services, path: Path, name: str, options: JobOptions) -> int:
    """Refuse a target that is not a usable video, is past a media limit, or whose range is
    impossible (-> 422); returns the number of frames the task will process. The probe runs
    in a child process with memory and CPU limits: a file that crashes or hangs FFmpeg costs
    that child, never the API."""
    settings = svc.settings
    try:
        video = probe_untrusted(
            path,
            settings.media_limits(),
            timeout_s=settings.probe_timeout_s,
            memory_bytes=settings.probe_memory_bytes,
        )
        start, end = frame_range(video.frame_count, options.trim_start, options.trim_end)
    except PipelineError as exc:  # name the user's file, not the scratch copy
        raise type(exc)(scrub(str(exc), {path.name: name})) from None
    return end - start


def _check_images(svc: Services, upload: Upload, scratch: Path) -> None:
    """Source and reference images: real images within the pixel limit, read from their
    headers (a decompression bomb is never decoded)."""
    named = [(key, f"source image #{n + 1}") for n, key in enumerate(upload.source_keys)]
    if upload.reference_key:
        named.append((upload.reference_key, "the reference image"))
    for key, name in named:
        with svc.storage.fetch_once(key, scratch) as path:
            try:
                check_image(path, svc.settings.media_limits())
            except PipelineError as exc:
                raise type(exc)(scrub(str(exc), {path.name: name})) from None


def _create(
    svc: Services, upload: Upload, options: JobOptions, idempotency_key: str | None, frames: int
) -> Task | None:
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
            tenant=upload.tenant,
            frames_total=frames,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        return None
