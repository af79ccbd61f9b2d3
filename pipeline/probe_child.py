"""The child process of ``pipeline.sandbox``: probe one file under resource limits, print JSON.

It loads FFmpeg first (a spare prober does so before its request comes), then reads
``{"path", "limits", "memory_bytes", "cpu_s", "crash"}`` on stdin and writes one of
``{"probe": ...}``, ``{"error": message}`` or ``{"out_of_memory": true}`` on stdout. The
limits are set before the file is opened, so they hold for everything FFmpeg does with it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any


def _limit(request: dict[str, Any]) -> None:
    memory, cpu = int(request["memory_bytes"]), int(request["cpu_s"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind


def _run(request: dict[str, Any]) -> dict[str, Any]:
    from pipeline.errors import InvalidMediaError
    from pipeline.limits import MediaLimits
    from pipeline.probe import probe

    try:
        return {"probe": probe(Path(request["path"]), MediaLimits(**request["limits"])).to_dict()}
    except InvalidMediaError as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"out_of_memory": True}


def main() -> None:
    import pipeline.probe  # noqa: F401  FFmpeg loaded while the request is on its way

    request = json.load(sys.stdin)
    _limit(request)
    if request.get("crash"):  # tests (FACEFLEET_TEST_PROBER_CRASH): abort, as a crash would
        os.abort()
    json.dump(_run(request), sys.stdout)


if __name__ == "__main__":
    main()
