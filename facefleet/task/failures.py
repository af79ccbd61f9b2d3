"""What a user is told when work fails: the kind of failure, where it happened, and the
service by its role ("object storage", "the database"); never the deployment's addresses,
users or file paths. The full detail goes to the log line that carries the same task id.
"""

from __future__ import annotations

import errno
import re
import sys
from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from facefleet.config.options import OptionsError
from facefleet.storage.base import StorageError
from pipeline.errors import DeviceError, PipelineError, ProviderError
from pipeline.models.oom import DeviceMemoryError

# bucket keys, as a user would name what they hold
_KEY_ROLES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'?tasks/\w+/input/target'?"), "the target video"),
    (re.compile(r"'?tasks/\w+/input/reference'?"), "the reference image"),
    (re.compile(r"'?tasks/\w+/work/segments/(\d+)/(\d+)\.mp4'?"), "segment {1} of chunk {0}"),
    (re.compile(r"'?tasks/\w+/work/(?:probe\.json|assets\.npz)'?"), "the task's plan"),
    (re.compile(r"'?tasks/\w+/output\.mp4'?"), "the output"),
    (re.compile(r"'?tasks/\w+/[\w/.-]*'?"), "the task's files"),
)
_SOURCE_KEY = re.compile(r"'?(?:tasks/\w+/input/)?\bsource-(\d+)\b'?")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", re.IGNORECASE)
_CACHE_NAME = re.compile(r"\b[0-9a-f]{40}\b")  # a worker's cached copy of an input
_SCRATCH_NAME = re.compile(r"\bff-[\w.-]+")
_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/:]+/)+[^\s'\":,)]*")


def scrub(text: str, names: Mapping[str, str] | None = None) -> str:
    """``text`` with local file names replaced by the user's (``names``), bucket keys by
    what they hold, and any URL or absolute path removed."""
    text = _named(text, names)
    text = _SOURCE_KEY.sub(lambda m: f"source image #{int(m[1]) + 1}", text)
    for pattern, role in _KEY_ROLES:
        text = pattern.sub(partial(_fill, role), text)
    text = _URL.sub("a service address", text)
    text = _PATH.sub("a work file", text)
    text = _CACHE_NAME.sub("the input file", text)
    return _SCRATCH_NAME.sub("a work file", text)


def infrastructure(exc: BaseException) -> str | None:
    """The service, by role, when ``exc`` is an infrastructure failure (it says nothing about
    the work: waiting and trying again may help); None for a failure of the work itself."""
    if isinstance(exc, StorageError):
        return "object storage" if exc.transient else None
    if isinstance(exc, OperationalError | DisconnectionError | InterfaceError):
        return "the database"
    redis = _redis()
    if redis is not None and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "Redis"
    if isinstance(exc, ConnectionError | TimeoutError):  # the broker, or any socket we did not wrap
        return "a backing service"
    return None


def local_fault(exc: BaseException) -> str | None:
    """What is wrong with this host, when ``exc`` is a fault of the worker that met it and not
    of the work (a full scratch disk, a model its device or runtime cannot load, credentials
    the bucket refuses): safe to show; None otherwise. Another host may do the work."""
    if isinstance(exc, StorageError):
        return f"object storage refused this worker's credentials: {scrub(str(exc))}" if exc.local else None
    if isinstance(exc, DeviceMemoryError):
        return f"this worker's accelerator ran out of memory: {scrub(str(exc))}"
    if isinstance(exc, DeviceError | ProviderError):
        return f"this worker cannot load its models: {scrub(str(exc))}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return describe(exc)
    return None


def _named(text: str, names: Mapping[str, str] | None) -> str:
    for local, shown in (names or {}).items():
        text = text.replace(local, shown)
    return text


def _fill(role: str, match: re.Match[str]) -> str:
    return role.format(*(str(int(group)) for group in match.groups()))


def describe(exc: BaseException, names: Mapping[str, str] | None = None, *, keep_paths: bool = False) -> str:
    """One line for a task's ``error``: what kind of failure ``exc`` is, safe to show (with
    ``keep_paths``, to the owner of the machine: its paths and URLs stay)."""
    if isinstance(exc, PipelineError | OptionsError | StorageError):
        return _named(str(exc), names) if keep_paths else scrub(str(exc), names)
    if isinstance(exc, SQLAlchemyError):
        return f"the database failed ({type(exc).__name__})"
    redis = _redis()
    if redis is not None and isinstance(exc, redis.RedisError):
        return f"Redis failed ({type(exc).__name__})"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "the worker's scratch disk is full (no space left on device)"
        if exc.errno == errno.EROFS:
            return "the worker's scratch disk is read-only"
        if exc.errno == errno.ENOMEM or isinstance(exc, MemoryError):
            return "the worker ran out of memory"
        return f"the worker's local disk failed ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, MemoryError):
        return "the worker ran out of memory"
    return f"an internal error ({type(exc).__name__}); the operators' logs have the details"


def _redis() -> Any:
    """The redis module if something loaded it (else no error can be one of its own): the
    embedded mode does not pay for importing it."""
    return sys.modules.get("redis")
