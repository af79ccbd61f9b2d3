"""The child process of ``pipeline.verify_media.verify_untrusted``: inspect one file's
provenance under resource limits, print JSON (``{"report"}``, ``{"error"}`` or
``{"out_of_memory"}``). The limits are set before FFmpeg or c2pa is loaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipeline.probe_child import _limit


def _run(request: dict[str, Any]) -> dict[str, Any]:
    try:
        from pipeline.errors import InvalidMediaError
        from pipeline.limits import MediaLimits
        from pipeline.verify_media import inspect

        anchors = Path(request["trust_anchors"]) if request.get("trust_anchors") else None
        try:
            report = inspect(
                Path(request["path"]), MediaLimits(**request["limits"]), int(request["max_frames"]), anchors
            )
            return {"report": report}
        except InvalidMediaError as exc:
            return {"error": str(exc)}
    except MemoryError:
        return {"out_of_memory": True}


def main() -> None:
    request = json.load(sys.stdin)
    _limit(request)
    json.dump(_run(request), sys.stdout)


if __name__ == "__main__":
    main()
