"""A process's peak resident memory over one piece of work (Linux): the kernel's high-water
mark (``VmHWM``) is reset to the current size at the start (``clear_refs`` 5) and read at
the end. Elsewhere, or without permission, nothing is measured."""

from __future__ import annotations

import contextlib
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
