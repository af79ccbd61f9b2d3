"""An S3-compatible bucket as the storage (distributed mode), through boto3.

Writes are atomic by S3's own rules (an object appears whole or not at all; a multipart
upload that is aborted leaves nothing). Reads that need a file (``local_path``) go through
a cache on the worker's disk keyed by the object's ETag (``facefleet.storage.file_cache``):
a worker downloads a target once, not once per chunk, and the cache is bounded (least
recently used files go first).
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from facefleet.storage import scratch
from facefleet.storage.base import (
    BucketMissing,
    NoCredentials,
    ObjectMissing,
    StorageError,
    UploadTooLarge,
)
from facefleet.storage.file_cache import FileCache
from facefleet.storage.s3_multipart import OwnUploads, put_resumable, unfinished_uploads
from facefleet.storage.transfer_watch import TransferWatch

_PART_SIZE = 8 * 1024 * 1024
_PRESIGN_REUSE_S = 60.0
_PRESIGNED_KEPT = 10_000
_DELETE_BATCH = 1000
_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 60


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
        public_endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        # adaptive retries back off on throttling; a bucket that does not answer fails in
        # seconds (our callers then wait out the outage, with their own deadline)
        config = Config(
            retries={"max_attempts": 5, "mode": "adaptive"},
            connect_timeout=_CONNECT_TIMEOUT_S,
            read_timeout=_READ_TIMEOUT_S,
            s3={"addressing_style": "path"},
        )
        self._s3 = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        # download links are signed for the address users reach (signing needs no connection)
        self._presigner = (
            boto3.client("s3", endpoint_url=public_endpoint_url, region_name=region, config=config)
            if public_endpoint_url and public_endpoint_url != endpoint_url
            else self._s3
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(_PART_SIZE, 5 * 1024 * 1024),
            max_concurrency=4,
            use_threads=True,
        )
        self.cache = FileCache(cache_dir, cache_max_bytes)
        self._uploads = OwnUploads()
        self._presigned: OrderedDict[tuple[str, int], tuple[str, float]] = OrderedDict()
        self._presigned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r})"

    # ------------------------------------------------------------------------ writes

    def put_file(self, key: str, path: Path, progress: Callable[[], None] | None = None) -> None:
        """Store ``path`` at ``key``. A file above the multipart threshold goes up in parts
        that survive a failure: called again (the caller retries after an outage), it
        finds the upload it began, keeps the parts already there whose checksum matches,
        and sends only the rest. A small file is one PUT, repeated whole (it is idempotent).
        ``progress`` hears of the transfer going on (``TransferWatch``)."""
        try:
            with TransferWatch(progress, _CONNECT_TIMEOUT_S + _READ_TIMEOUT_S) as watch:
                if path.stat().st_size < self._transfer.multipart_threshold:
                    self._s3.upload_file(
                        str(path), self.bucket, key, Config=self._transfer, Callback=watch.moved
                    )
                else:
                    put_resumable(
                        self._s3,
                        self.bucket,
                        key,
                        path,
                        self._transfer.multipart_chunksize,
                        self._transfer.max_request_concurrency,
                        self._uploads,
                        watch.moved,
                    )
        except (BotoCoreError, ClientError) as exc:
            raise _failure("store", key, exc, self.bucket) from exc
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError of upload_file
            cause = exc.__context__
            if isinstance(cause, ClientError):
                raise _failure("store", key, cause, self.bucket) from exc
            raise StorageError(f"object storage refused to store {key!r}", transient=True) from exc

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> int:
        reader = _LimitedReader(stream, max_bytes)
        try:
            self._s3.upload_fileobj(reader, self.bucket, key, Config=self._transfer)
        except UploadTooLarge:
            self._delete_keys([key])  # a single-part PUT may have gone through before the limit
            raise
        except (BotoCoreError, ClientError) as exc:
            raise _failure("store", key, exc, self.bucket) from exc
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
        except (BotoCoreError, ClientError) as exc:
            raise _failure("read", key, exc, self.bucket) from exc

    def get_external(self, bucket: str, key: str, dest: Path, max_bytes: int) -> int:
        """Copy an object of another bucket (an ``s3://`` input the deployment allows) to a
        local file with this deployment's credentials; refuses more than ``max_bytes``."""
        try:
            size = int(self._s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
            if size > max_bytes:
                raise UploadTooLarge(max_bytes)
            self._s3.download_file(bucket, key, str(dest), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            failure = _failure("read", f"s3://{bucket}/{key}", exc, bucket)
            failure.local = False  # another bucket refusing us says nothing of this host
            raise failure from exc
        return size

    def local_path(self, key: str) -> Path:
        etag = self._head(key)["ETag"].strip('"')
        return self.cache.fetch(f"{key}@{etag}", lambda dest: self.get_file(key, dest))

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[Path]:
        etag = self._head(key)["ETag"].strip('"')
        with self.cache.hold(f"{key}@{etag}", lambda dest: self.get_file(key, dest)) as path:
            yield path

    @contextlib.contextmanager
    def fetch_once(self, key: str, scratch_root: Path) -> Iterator[Path]:
        with scratch.scratch_file(scratch_root, "read") as path:
            self.get_file(key, path)
            yield path

    def _head(self, key: str) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._s3.head_object(Bucket=self.bucket, Key=key)
            return head
        except (BotoCoreError, ClientError) as exc:
            raise _failure("read", key, exc, self.bucket) from exc

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectMissing:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise _failure("list", prefix, exc, self.bucket) from exc
        return sorted(keys)

    def folders(self, prefix: str) -> builtins.list[str]:
        found: set[str] = set()
        try:
            for operation in ("list_objects_v2", "list_multipart_uploads"):
                pages = self._s3.get_paginator(operation).paginate(
                    Bucket=self.bucket, Prefix=prefix, Delimiter="/"
                )
                for page in pages:
                    found.update(item["Prefix"] for item in page.get("CommonPrefixes", []))
        except (BotoCoreError, ClientError) as exc:
            raise _failure("list", prefix, exc, self.bucket) from exc
        return sorted(found)

    def delete_prefix(self, prefix: str) -> None:
        """Every object under ``prefix``, and the parts of unfinished uploads there (which
        a bucket would otherwise keep, and bill, until a lifecycle rule removes them)."""
        self._delete_keys(self.list(prefix))
        try:
            for upload in unfinished_uploads(self._s3, self.bucket, prefix):
                self._s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        except (BotoCoreError, ClientError) as exc:
            raise _failure("delete", f"unfinished uploads under {prefix}", exc, self.bucket) from exc

    def delete(self, key: str) -> None:
        self._delete_keys([key])

    def _delete_keys(self, keys: builtins.list[str]) -> None:
        try:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
                answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise StorageError(
                        f"object storage refused to delete {first.get('Key')!r} ({first.get('Code')})",
                        transient=True,
                    )
        except (BotoCoreError, ClientError) as exc:
            raise _failure("delete", f"{len(keys)} objects", exc, self.bucket) from exc

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        """A download link valid for ``expires_s`` (give or take the minute a link is reused
        for: signing costs more than the rest of a status request)."""
        now = time.monotonic()
        reuse_s = min(_PRESIGN_REUSE_S, expires_s / 10)
        with self._presigned_lock:
            found = self._presigned.get((key, expires_s))
            if found is not None and now - found[1] < reuse_s:
                return found[0]
        # a browser following the link saves the file rather than playing it in the tab
        disposition = f'attachment; filename="{key.rsplit("/", 1)[-1]}"'
        url: str = self._presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentDisposition": disposition},
            ExpiresIn=expires_s,
        )
        with self._presigned_lock:
            self._presigned[(key, expires_s)] = (url, now)
            self._presigned.move_to_end((key, expires_s))
            while len(self._presigned) > _PRESIGNED_KEPT:
                self._presigned.popitem(last=False)
        return url

    def create_bucket(self) -> None:
        """Create the bucket (``facefleet doctor --fix``); one that exists already is fine."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError:
            pass
        except BotoCoreError as exc:
            raise _failure("reach", f"bucket {self.bucket}", exc) from exc
        try:
            self._s3.create_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise _failure("create", f"bucket {self.bucket}", exc, self.bucket) from exc

    def ping(self) -> None:
        """Raise StorageError unless the bucket answers (BucketMissing, NoCredentials: a
        misconfiguration, not an outage)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _reason(exc) in _MISSING | {"NoSuchBucket"}:  # HEAD has no body: a bare 404
                raise BucketMissing(self.bucket) from exc
            raise _failure("reach", f"bucket {self.bucket}", exc, self.bucket) from exc
        except BotoCoreError as exc:
            raise _failure("reach", f"bucket {self.bucket}", exc, self.bucket) from exc


_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "RequestTimeout",
    }
)
# the bucket refused this host's credentials: another host's may be fine
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "TokenRefreshRequired",
        "AccessDenied",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
    }
)


def _failure(action: str, what: str, exc: BotoCoreError | ClientError, bucket: str = "") -> StorageError:
    """A boto error as a StorageError that names the object and the kind of failure, never
    the endpoint (the full error stays chained for the log); a missing ``bucket`` or missing
    credentials as the misconfiguration they are."""
    if isinstance(exc, ClientError):
        code = _reason(exc)
        if code == "NoSuchBucket":
            return BucketMissing(bucket or str(exc.response.get("Error", {}).get("BucketName", "")))
        if code in _MISSING:
            return ObjectMissing(f"no object {what!r} in the bucket")
        return StorageError(
            f"object storage refused to {action} {what!r} ({code})",
            transient=code in _TRANSIENT_CODES,
            local=code in _CREDENTIAL_CODES,
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return NoCredentials()
    return StorageError(
        f"object storage is unreachable (could not {action} {what!r}: {type(exc).__name__})", transient=True
    )


def _reason(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", exc))
