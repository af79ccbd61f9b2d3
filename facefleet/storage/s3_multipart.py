"""A large file stored as an S3 multipart upload that survives failures: called again after
an outage, ``put_resumable`` finds the upload this process began (never another writer's),
keeps the parts already there whose checksum matches, and sends only the rest; and
``unfinished_uploads``, the uploads begun under a prefix and not completed (aborted when
the prefix is deleted).

Kept apart from ``S3Storage`` (``facefleet.storage.s3``), which calls in here: this is S3's
multipart protocol on the client it is given, and boto's errors go to the caller as they
are, for it to name the object.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


class OwnUploads:
    """The multipart uploads this process began and has not completed, by key. Only these
    are resumed: an unfinished upload of the same key found in the bucket may be another
    writer's that is still sending parts (a stitcher whose lease lapsed during a slow
    upload), and completing it, or having it completed under our feet, fails one of us.
    An upload is taken out while a call sends it, so two calls never share one."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> str | None:
        with self._lock:
            return self._ids.pop(key, None)

    def keep(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._ids[key] = upload_id


def put_resumable(
    s3: Any,
    bucket: str,
    key: str,
    path: Path,
    part_size: int,
    concurrency: int,
    own: OwnUploads,
    moved: Callable[[int], None] = lambda _count: None,
) -> None:
    """Store ``path`` at ``key`` in parts of ``part_size`` bytes, ``concurrency`` at a time,
    going on with the upload an earlier call of this process began (``own``); ``moved``
    hears of every part sent or found stored."""
    upload_id, stored = _open_upload(s3, bucket, key, own)
    size = path.stat().st_size

    def send(number: int) -> dict[str, Any]:
        with open(path, "rb") as handle:
            handle.seek((number - 1) * part_size)
            data = handle.read(part_size)
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        if stored.get(number) != etag:  # missing, or left by a writer of other bytes
            sent = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            etag = sent["ETag"]
        moved(len(data))
        return {"PartNumber": number, "ETag": etag}

    numbers = range(1, -(-size // part_size) + 1)
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            parts = list(pool.map(send, numbers))
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        own.keep(key, upload_id)  # the next call of this process goes on with it
        raise


def _open_upload(s3: Any, bucket: str, key: str, own: OwnUploads) -> tuple[str, dict[int, str]]:
    """The upload of ``key`` this process began and the parts it holds, or a new upload."""
    upload_id = own.take(key)
    if upload_id is not None:
        try:
            return upload_id, _stored_parts(s3, bucket, key, upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":  # aborted: start again
                own.keep(key, upload_id)
                raise
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]), {}


def _stored_parts(s3: Any, bucket: str, key: str, upload_id: str) -> dict[int, str]:
    parts: dict[int, str] = {}
    pages = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id)
    for page in pages:
        parts.update((p["PartNumber"], p["ETag"]) for p in page.get("Parts", []))
    return parts


def unfinished_uploads(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        uploads.extend(page.get("Uploads", []))
    return uploads
