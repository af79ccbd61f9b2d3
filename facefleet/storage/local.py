"""A local folder as the bucket (embedded mode)."""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from facefleet.storage.base import ObjectMissing, StorageError, UploadTooLarge
from facefleet.storage.scratch import PART_PREFIX

_COPY_BUFFER = 1 << 20


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError(f"key {key!r} leaves the bucket")
        return path

    def _atomic_write(self, key: str, write) -> int:  # type: ignore[no-untyped-def]
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PART_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                size = int(write(out))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def put_file(self, key: str, path: Path, progress: Callable[[], None] | None = None) -> None:
        """Stored by hard link where the file system allows (the caller writes no more to
        ``path``: scratch files, removed once stored), its data flushed to disk; else copied.
        A segment or a whole output is then written once, not twice. (``progress``: a local
        write has no transfer to watch.)"""
        if not self._link(key, path, sync=True):
            self._copy(key, path)

    def _copy(self, key: str, path: Path) -> None:
        def write(out: BinaryIO) -> int:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, _COPY_BUFFER)
            return out.tell()

        self._atomic_write(key, write)

    def adopt(self, key: str, path: Path) -> None:
        """Store a user's file under ``key`` without copying its bytes where the file system
        allows (a hard link, put in place atomically); else a copy."""
        if not self._link(key, path, sync=False):
            self._copy(key, path)

    def _link(self, key: str, path: Path, *, sync: bool) -> bool:
        """``path`` hard-linked in place as ``key`` (atomically); False where links cannot be
        made (another file system, or none allowed)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        link = target.with_name(f"{PART_PREFIX}{target.name}.{os.getpid()}.{threading.get_ident()}")
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:
            return False
        try:
            if sync:
                fd = os.open(link, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(link, target)
        finally:
            link.unlink(missing_ok=True)  # left only where ``path`` was the stored file already
        return True

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> int:
        def write(out: BinaryIO) -> int:
            total = 0
            while chunk := stream.read(_COPY_BUFFER):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise UploadTooLarge(max_bytes)
                out.write(chunk)
            return total

        return self._atomic_write(key, write)

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.local_path(key), dest)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(f"no object {key!r} in the bucket")
        return path

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[Path]:
        yield self.local_path(key)

    def fetch_once(self, key: str, scratch_root: Path) -> AbstractContextManager[Path]:
        return self.hold(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get_external(self, bucket: str, key: str, dest: Path, max_bytes: int) -> int:
        raise StorageError(f"s3://{bucket}/{key}: a folder bucket reads no other bucket")

    def size(self, key: str) -> int:
        return self.local_path(key).stat().st_size

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        directory = base if base.is_dir() else base.parent
        if not directory.exists():
            return []
        root = self.root.resolve()
        keys = (
            p.relative_to(root).as_posix()
            for p in directory.rglob("*")
            if p.is_file() and not p.name.startswith(PART_PREFIX)
        )
        return sorted(k for k in keys if k.startswith(prefix))

    def folders(self, prefix: str) -> builtins.list[str]:
        directory = self._path(prefix) if prefix else self.root
        if not directory.is_dir():
            return []
        return sorted(f"{prefix}{p.name}/" for p in directory.iterdir() if p.is_dir())

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self._path(key).unlink(missing_ok=True)
        _remove_empty_folders(self._path(prefix) if prefix else self.root, self.root)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        return self.local_path(key).as_uri()


def _remove_empty_folders(top: Path, root: Path) -> None:
    """Remove ``top`` and the folders under it that are now empty (never ``root`` itself)."""
    if not top.is_dir():
        top = top.parent
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if top.resolve() != root.resolve():
        with contextlib.suppress(OSError):
            top.rmdir()
