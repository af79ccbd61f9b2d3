"""A large file stored as an S3 multipart upload that survives failures: called again after
an outage, ``put_resumable`` finds the upload it began, keeps the parts already there whose
checksum matches, and sends only the rest; and ``unfinished_uploads``, the uploads begun
under a prefix and not completed (resumed here, aborted when the prefix is deleted).

Kept apart from ``S3Storage`` (``facefleet.storage.s3``), which calls in here: this is S3's
multipart protocol on the client it is given, and boto's errors go to the caller as they
are, for it to name the object.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def put_resumable(s3: Any, bucket: str, key: str, path: Path, part_size: int, concurrency: int) -> None:
    """Store ``path`` at ``key`` in parts of ``part_size`` bytes, ``concurrency`` at a time,
    going on with the upload an earlier call began."""
    upload_id = _open_upload(s3, bucket, key)
    stored = _stored_parts(s3, bucket, key, upload_id)
    size = path.stat().st_size

    def send(number: int) -> dict[str, Any]:
        with open(path, "rb") as handle:
            handle.seek((number - 1) * part_size)
            data = handle.read(part_size)
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        if stored.get(number) != etag:  # missing, or left by a writer of other bytes
            sent = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            etag = sent["ETag"]
        return {"PartNumber": number, "ETag": etag}

    numbers = range(1, -(-size // part_size) + 1)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        parts = list(pool.map(send, numbers))
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})


def _open_upload(s3: Any, bucket: str, key: str) -> str:
    """The id of the newest unfinished multipart upload of ``key``, or of a new one."""
    uploads = unfinished_uploads(s3, bucket, key)
    mine = sorted((u for u in uploads if u["Key"] == key), key=lambda u: u["Initiated"])
    if mine:
        return str(mine[-1]["UploadId"])
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])


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
