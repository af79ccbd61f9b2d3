"""What the CLI draws while work goes on: a bar over frames (``facefleet run``, a local
batch) and the quality gate's report line (``run`` and ``status``)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm


def quality_line(quality: dict[str, Any]) -> str:
    """The quality gate's report as the CLI prints it (``facefleet run`` and ``status``)."""
    return "quality: " + json.dumps(quality, sort_keys=False)


# the rate in frames per second always (tqdm would turn it into s/frame below 1 frame/s)
_BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"


class FrameBar:
    """A tqdm bar over frames, created when the frame total is first known, and a line per
    phase. It starts at the frames already stored (a resumed job), only moves forward, and
    its rate and ETA count this run's frames only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: tqdm | None = None

    def phase(self, name: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            print(f"{name}...", file=sys.stderr, flush=True)

    def update(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                bar_format=_BAR_FORMAT,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def __enter__(self) -> FrameBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
