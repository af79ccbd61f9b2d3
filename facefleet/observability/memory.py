"""A process's peak resident memory over one piece of work (Linux): the kernel's high-water
mark (``VmHWM``) is reset to the current size at the start (``clear_refs`` 5) and read at
the end. Elsewhere, or without permission, nothing is measured."""

from __future__ import annotations

import contextlib
import ctypes
import functools
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new peak from the current resident size; False where the kernel cannot."""
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")
        return True
    return False


def peak_rss_bytes() -> int | None:
    """The resident high-water mark since the last reset (or since the process began)."""
    with contextlib.suppress(OSError, ValueError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


# glibc's mallopt parameter for the most heap arenas the threads of a process may share
_M_ARENA_MAX = -8
_ARENAS = 2


def release_free_memory() -> None:
    """Keep a process's footprint flat over a long job (glibc only; elsewhere nothing).

    Decoders and encoders run in threads that come and go with every segment; glibc gives
    new threads new heap arenas (up to 8 per core) and keeps what each arena freed, so a
    10-minute input peaked ~12 % over a 1-minute one. This caps the arenas at two and hands
    the free pages back to the kernel (``malloc_trim``); called between chunks."""
    libc = _libc()
    if libc is None:
        return
    with contextlib.suppress(AttributeError):
        libc.mallopt(_M_ARENA_MAX, _ARENAS)
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None
