"""The embedded run's child processes die with it, whatever kills it.

Three layers, because no single one covers every way a run ends:

- a child asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a
  ``kill -9`` of ``facefleet run`` takes its children with it at once;
- the run ends its pool itself on Ctrl-C and on a plain ``kill`` (SIGTERM, see
  ``stop_on_sigterm``);
- each child records itself (pid and start time) under the job's lock folder, and the next
  run of the job ends any recorded child still alive before it starts (a child started in
  the instant its parent died, or a system without parent-death signals).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In a child: be killed when the parent dies (Linux); exit now if it died already."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22): a
    pid and its start time name one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def record_child(folder: Path) -> None:
    """In a child: note this process under ``folder`` (the job's), for the next run."""
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    (folder / str(pid)).write_text(_start_time(pid) or "")


def end_survivors(folder: Path, wait_s: float = 5.0) -> list[int]:
    """Kill the children a previous run of the job recorded in ``folder`` that still live
    (same pid, same start time), wait until they are gone, and forget them all; returns the
    pids ended."""
    if not folder.is_dir():
        return []
    ended = []
    for entry in folder.iterdir():
        if entry.name.isdigit():
            pid, started = int(entry.name), entry.read_text().strip()
            if started and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    ended.append(pid)
        entry.unlink(missing_ok=True)
    deadline = time.monotonic() + wait_s
    while any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in ended):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return ended


def _running(pid: int) -> bool:
    """False for a process that is gone or only a zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """A plain ``kill`` (SIGTERM) ends the run the way Ctrl-C does: KeyboardInterrupt, so
    the pool is terminated on the way out and the user told how to resume."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
