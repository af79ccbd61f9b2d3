"""Probing an untrusted upload in a child process, so that a hostile file cannot take the caller down.

The child is a fresh interpreter (``python -m pipeline.probe_child``), started by
``subprocess`` without ``preexec_fn``, which is safe in a threaded server; it sets its own
address-space and CPU limits. A child that crashes, runs out of memory or time becomes an
InvalidMediaError; the probe's own refusals come back with their message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pipeline
from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits
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
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.probe_child"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            errors="replace",  # FFmpeg's log on stderr may hold any bytes
            timeout=timeout_s,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:  # the child is killed by then
        raise _unsafe(path, "timed out") from None
    if done.returncode == -signal.SIGXCPU:
        raise _unsafe(path, "timed out")
    answer = _answer(done.stdout) if done.returncode == 0 else None
    if answer is None:
        log.warning("the prober of %s ended with %s: %s", path.name, done.returncode, done.stderr[-2000:])
        raise _unsafe(path, "crashed")
    if "probe" in answer:
        return VideoProbe.from_dict(answer["probe"])
    if "error" in answer:
        raise InvalidMediaError(str(answer["error"]))
    raise _unsafe(path, "ran out of memory")


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
