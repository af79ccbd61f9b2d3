"""The storage interface. Every write is atomic: a key is either absent or complete."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol


class StorageError(Exception):
    """The bucket refused or lost something. The message names the object and the kind of
    failure, never the endpoint; ``transient`` says whether trying again later may help
    (unreachable, 5xx, throttled); ``local`` that the bucket refused this host's credentials
    (expired, unknown, badly signed): a fault of the host, which another host may not have."""

    def __init__(self, message: str, *, transient: bool = False, local: bool = False) -> None:
        super().__init__(message)
        self.transient, self.local = transient, local


class ObjectMissing(StorageError):
    """No object under that key."""


class Misconfigured(StorageError):
    """A fault of the deployment's settings that no retry mends (the bucket does not exist,
    no credentials are configured); the message names it and its fix, for an operator."""


class BucketMissing(Misconfigured):
    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"the bucket {bucket} does not exist: create it with `facefleet doctor --fix` "
            "(or set FACEFLEET_S3_BUCKET to an existing bucket)"
        )
        self.bucket = bucket


class NoCredentials(Misconfigured):
    def __init__(self) -> None:
        super().__init__(
            "no credentials for object storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE, or give this host a role)",
            local=True,
        )


class UploadTooLarge(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


class Storage(Protocol):
    def put_file(self, key: str, path: Path, progress: Callable[[], None] | None = None) -> None:
        """Store a local file under ``key`` (atomically; overwrites). The caller does not
        write to ``path`` afterwards: a folder bucket may keep the file itself (a hard link).
        ``progress`` is called as the transfer goes on (a lease's stall watch: a long upload
        is progress, not a hung holder)."""

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> int:
        """Store a stream without holding it in memory; raise UploadTooLarge past ``max_bytes``
        (leaving nothing behind). Returns the size."""

    def get_file(self, key: str, dest: Path) -> None:
        """Copy ``key`` to a local file."""

    def local_path(self, key: str) -> Path:
        """A local, read-only path holding the object's bytes (the file itself for a folder,
        a cached copy keyed by the object's version for a remote bucket)."""

    def hold(self, key: str) -> AbstractContextManager[Path]:
        """Like ``local_path``, and the file stays on disk (is not evicted) until the block ends."""

    def fetch_once(self, key: str, scratch_root: Path) -> AbstractContextManager[Path]:
        """A local path with the object's bytes for one read: the file itself for a folder,
        a private download under ``scratch_root`` that goes at the end of the block for a
        remote bucket (so a one-time read never pushes shared files out of the cache)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def folders(self, prefix: str) -> builtins.list[str]:
        """The "folders" right under ``prefix`` (each ends with "/"), those that hold only an
        unfinished upload included."""

    def delete_prefix(self, prefix: str) -> None: ...

    def delete(self, key: str) -> None:
        """Remove one object (nothing happens if it is absent)."""

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        """A URL that downloads ``key`` without credentials, where the backend has one."""

    def get_external(self, bucket: str, key: str, dest: Path, max_bytes: int) -> int:
        """An object of another bucket (an ``s3://`` input) copied to ``dest``; its size."""
