"""The worker's cache of bucket objects on local disk (``S3Storage.local_path`` and ``hold``):
files named by a digest of their key and version, bounded in total size, the least recently
used evicted first, shared safely by the processes of one host.

Kept apart from ``facefleet.storage.s3``, which fills it: it knows files and locks, not S3.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facefleet.storage import scratch
from facefleet.storage.base import StorageError

log = logging.getLogger(__name__)


class FileCache:
    """Files on local disk named by a digest of their identity (key and version), bounded
    in total size; the least recently used go first. Safe across processes on one host:
    entries appear by atomic rename, a file that a running step holds (``hold``: a shared
    flock) is never evicted, and downloads in progress count towards the bound."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = Path(root), max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.downloads = 0

    def fetch(self, identity: str, download: Any) -> Path:
        """The file for ``identity``, downloaded (``download(dest)``) if it is not here."""
        with self.hold(identity, download) as path:
            return path

    @contextlib.contextmanager
    def hold(self, identity: str, download: Any) -> Iterator[Path]:
        """The file for ``identity``, pinned against eviction until the block ends."""
        path = self.root / hashlib.sha256(identity.encode()).hexdigest()[:40]
        for _ in range(5):
            try:
                fd: int | None = scratch.hold(path)
            except FileNotFoundError:
                fd = self._download(path, download)
            if fd is not None and not _still_named(fd, path):
                os.close(fd)
                fd = None
            if fd is None:
                continue  # evicted between the lookup and the lock: fetch it again
            try:
                os.utime(path)  # most recently used
                yield path
            finally:
                os.close(fd)
            return
        raise StorageError(
            f"the file cache at its bound ({self.max_bytes} bytes) keeps evicting {identity!r}"
        )

    def _download(self, path: Path, download: Any) -> int | None:
        """Download into a held ``.part-`` file and rename it into place; returns the held
        descriptor (the lock follows the file through the rename), or None if it vanished."""
        with self._lock:
            if path.is_file():
                try:
                    return scratch.hold(path)
                except FileNotFoundError:
                    return None
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=scratch.PART_PREFIX)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                download(Path(tmp))
                os.replace(tmp, path)
            except BaseException:
                os.close(fd)
                Path(tmp).unlink(missing_ok=True)
                raise
            self.downloads += 1
            self._evict()
            return fd

    def _evict(self) -> None:
        entries = []
        for entry in self.root.iterdir():
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            if entry.is_file():
                entries.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if entry.name.startswith(scratch.PART_PREFIX) or scratch.is_held(entry):
                continue  # in use: a download in progress, or a file a running step reads
            entry.unlink(missing_ok=True)
            total -= size
            log.debug("cache: evicted %s", entry.name)


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not evicted meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
