"""Scratch files and folders that say whether anyone still needs them.

Each is created under a name of its own (two holders of one chunk on one host never share
a file) and held with a shared ``flock`` for as long as its creator uses it. A process that
dies, even by SIGKILL, drops its locks with it, so ``sweep`` at a worker's start removes
exactly what dead processes left behind and never what a live one is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "ff-"  # everything of ours at the top of a scratch folder starts so
PART_PREFIX = ".part-"  # downloads and atomic writes in progress (the file cache)


def unique_name(stem: str, suffix: str = "") -> str:
    return f"{PREFIX}{stem}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def hold(path: Path) -> int:
    """A shared lock on ``path`` (file or folder), held until the returned descriptor is
    closed; tells ``sweep`` that the path is in use."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def scratch_file(root: Path, stem: str, suffix: str = "") -> Iterator[Path]:
    """A new, empty, held file under ``root``; removed on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / unique_name(stem, suffix)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    fd = hold(path)
    try:
        yield path
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_dir(root: Path, stem: str) -> Iterator[Path]:
    """A new, held folder under ``root``; removed with its contents on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / unique_name(stem)
    path.mkdir()
    fd = hold(path)
    try:
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


def is_held(path: Path) -> bool:
    """Whether some process holds ``path`` (False for a path that is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def sweep(root: Path, older_than: float) -> int:
    """Remove our entries of ``root`` (and the ``.part-`` files one level down, the cache's)
    last modified before ``older_than`` (a ``time.time()``) that no live process holds.
    Returns how many were removed."""
    if not root.is_dir():
        return 0
    candidates = [p for p in root.iterdir() if p.name.startswith(PREFIX)]
    for folder in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(PREFIX)):
        candidates.extend(p for p in folder.iterdir() if p.name.startswith(PART_PREFIX))
    removed = 0
    for path in candidates:
        try:
            if path.lstat().st_mtime >= older_than or is_held(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("scratch: cannot remove %s (%s)", path.name, exc.strerror)
            continue
        removed += 1
    if removed:
        log.info("scratch: removed %d files left by processes that died", removed)
    return removed
