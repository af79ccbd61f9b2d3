"""Probing an untrusted upload in a child process, so that a hostile file cannot take the caller down.

The child is a fresh interpreter (``python -m pipeline.probe_child``), started by
``subprocess`` without ``preexec_fn``, which is safe in a threaded server; it sets its own
address-space and CPU limits before it opens the file. A child that crashes, runs out of
memory or time becomes an InvalidMediaError; the probe's own refusals come back with their
message.

A command that will probe soon (``facefleet run``) starts its prober ahead with
``start_spare``: the interpreter starts and loads FFmpeg on another core while the command
loads its own modules, and the next probe takes it (~0.15 s less on each run).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits

if TYPE_CHECKING:  # FFmpeg is loaded by the probe, not by starting a spare prober
    from pipeline.probe import VideoProbe

log = logging.getLogger(__name__)

_PROJECT = str(Path(pipeline.__file__).resolve().parent.parent)  # where the child imports pipeline from


def probe_untrusted(
    path: Path,
    limits: MediaLimits | None = None,
    *,
    timeout_s: float = 30.0,
    memory_bytes: int = 2 << 30,
    cpu_s: int | None = None,
    crash: bool = False,
) -> VideoProbe:
    """``probe(path, limits)`` in a child limited to ``memory_bytes`` of address space,
    ``cpu_s`` seconds of CPU (default: twice ``timeout_s``, decoders run threads) and
    ``timeout_s`` seconds of wall-clock time. ``crash`` (tests only): the child aborts, as a
    file that crashes FFmpeg would make it."""
    path = Path(path)
    request = {
        "path": str(path.absolute()),
        "limits": dataclasses.asdict(limits or MediaLimits()),
        "memory_bytes": memory_bytes,
        "cpu_s": cpu_s if cpu_s is not None else max(1, round(2 * timeout_s)),
        "crash": crash,
    }
    from pipeline.probe import VideoProbe

    child = _take_spare() or _start()
    try:
        stdout, stderr = child.communicate(json.dumps(request), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise _unsafe(path, "timed out") from None
    if child.returncode == -signal.SIGXCPU:
        raise _unsafe(path, "timed out")
    answer = _answer(stdout) if child.returncode == 0 else None
    if answer is None:
        log.warning("the prober of %s ended with %s: %s", path.name, child.returncode, stderr[-2000:])
        raise _unsafe(path, "crashed")
    if "probe" in answer:
        return VideoProbe.from_dict(answer["probe"])
    if "error" in answer:
        raise InvalidMediaError(str(answer["error"]))
    raise _unsafe(path, "ran out of memory")


_spare: subprocess.Popen[str] | None = None
_spare_lock = threading.Lock()


def start_spare() -> None:
    """Start the next prober now; it waits for its file. ``drop_spare`` ends it if no probe
    took it."""
    global _spare
    with _spare_lock:
        if _spare is None:
            _spare = _start()


def drop_spare() -> None:
    """End a spare prober that no probe took (a resumed job probes nothing)."""
    child = _take_spare()
    if child is not None:
        child.kill()
        child.communicate()


def _take_spare() -> subprocess.Popen[str] | None:
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    return child


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.probe_child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",  # FFmpeg's log on stderr may hold any bytes
        env=_child_env(),
    )


def _child_env() -> dict[str, str]:
    """The caller's environment, with this project importable and glibc's per-thread malloc
    arenas capped (each reserves 64 MiB of address space, which would eat the memory limit)."""
    paths = [_PROJECT, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "MALLOC_ARENA_MAX": "2"}


def _answer(stdout: str) -> dict[str, Any] | None:
    try:
        answer = json.loads(stdout)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _unsafe(path: Path, what: str) -> InvalidMediaError:
    return InvalidMediaError(f"{path.name}: the file could not be read safely (the prober {what})")
