"""An S3-compatible bucket as the storage (distributed mode), through boto3.

Writes are atomic by S3's own rules (an object appears whole or not at all; a multipart
upload that is aborted leaves nothing). Reads that need a file (``local_path``) go through
a cache on the worker's disk keyed by the object's ETag: a worker downloads a target once,
not once per chunk, and the cache is bounded (least recently used files go first).
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from facefleet.storage.base import StorageError, UploadTooLarge

log = logging.getLogger(__name__)

_PART_SIZE = 8 * 1024 * 1024
_DELETE_BATCH = 1000


class _LimitedReader:
    """A read-only stream that raises UploadTooLarge once more than ``limit`` bytes went by.

    boto3 then aborts the multipart upload (or never completes the single PUT), so nothing
    is left in the bucket."""

    def __init__(self, stream: BinaryIO, limit: int | None) -> None:
        self._stream, self._limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        if self._limit is not None and self.count > self._limit:
            raise UploadTooLarge(self._limit)
        return data

    def readable(self) -> bool:
        return True


class S3Storage:
    def __init__(
        self,
        bucket: str,
        *,
        cache_dir: Path,
        cache_max_bytes: int = 20 * 1024**3,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        multipart_threshold: int = 16 * 1024 * 1024,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self._s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(_PART_SIZE, 5 * 1024 * 1024),
            max_concurrency=4,
            use_threads=True,
        )
        self.cache = FileCache(cache_dir, cache_max_bytes)

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r})"

    # ------------------------------------------------------------------------ writes

    def put_file(self, key: str, path: Path) -> None:
        try:
            self._s3.upload_file(str(path), self.bucket, key, Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot store {key!r}: {exc}") from exc

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> int:
        reader = _LimitedReader(stream, max_bytes)
        try:
            self._s3.upload_fileobj(reader, self.bucket, key, Config=self._transfer)
        except UploadTooLarge:
            self._delete_keys([key])  # a single-part PUT may have gone through before the limit
            raise
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot store {key!r}: {exc}") from exc
        except Exception as exc:  # s3transfer wraps errors raised by the stream
            if isinstance(exc.__cause__, UploadTooLarge) or "exceeds the limit" in str(exc):
                self._delete_keys([key])
                raise UploadTooLarge(max_bytes or 0) from None
            raise
        return reader.count

    # ------------------------------------------------------------------------ reads

    def get_file(self, key: str, dest: Path) -> None:
        try:
            self._s3.download_file(self.bucket, key, str(dest), Config=self._transfer)
        except ClientError as exc:
            raise StorageError(f"cannot read {key!r}: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {key!r}: {exc}") from exc

    def local_path(self, key: str) -> Path:
        etag = self._head(key)["ETag"].strip('"')
        return self.cache.fetch(f"{key}@{etag}", lambda dest: self.get_file(key, dest))

    def _head(self, key: str) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._s3.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if _reason(exc) in ("404", "NoSuchKey", "NotFound"):
                raise StorageError(f"no object {key!r} in the bucket") from exc
            raise StorageError(f"cannot read {key!r}: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {key!r}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except StorageError as exc:
            if "no object" in str(exc):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot list {prefix!r}: {exc}") from exc
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        self._delete_keys(self.list(prefix))

    def _delete_keys(self, keys: builtins.list[str]) -> None:
        try:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot delete {len(keys)} objects: {exc}") from exc

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )
        return url

    def ping(self) -> None:
        """Raise StorageError unless the bucket answers."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"bucket {self.bucket!r} is not reachable: {exc}") from exc


def _reason(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", exc))


class FileCache:
    """Files on local disk named by a digest of their identity (key and version), bounded
    in total size; the least recently used go first. Safe across processes on one host:
    entries appear by atomic rename, and a reader holding an evicted file keeps its bytes."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = Path(root), max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.downloads = 0

    def fetch(self, identity: str, download: Any) -> Path:
        digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
        path = self.root / digest
        if path.is_file():
            os.utime(path)  # most recently used
            return path
        with self._lock:
            if path.is_file():
                return path
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".part-")
            os.close(fd)
            try:
                download(Path(tmp))
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            self.downloads += 1
            self._evict(keep=path)
        return path

    def _evict(self, keep: Path) -> None:
        entries = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".part-") or not entry.is_file():
                continue
            stat = entry.stat()
            entries.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if entry == keep:
                continue
            entry.unlink(missing_ok=True)
            total -= size
            log.debug("cache: evicted %s", entry.name)
