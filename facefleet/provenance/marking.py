"""The watermark's place in a task: decided when the task is written (``Task.provenance``),
so that every chunk, resumed or retried, marks or does not as the first attempt did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefleet.config.context import JobContext
from facefleet.records.db import Task
from pipeline.processors import Chain

if TYPE_CHECKING:
    import numpy as np

    from pipeline.quality import Figures, Measures
    from pipeline.watermark import Watermarker


def marked_task(provenance: dict[str, Any] | None) -> bool:
    """Whether a task's frames are marked, from its ``provenance``."""
    return bool((provenance or {}).get("watermark"))


def _task_marked(ctx: JobContext, task_id: str) -> bool:
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        return task is not None and marked_task(task.provenance)


def with_watermark(ctx: JobContext, task_id: str, chain: Chain) -> Chain:
    """``chain`` with the watermark as its last processor when the task is marked (never for
    the empty chain: a ``--processors none`` job re-encodes frames it did not change)."""
    if chain.empty:
        return chain
    from pipeline.watermark import Watermarker  # numpy and scipy: only for chains that touch pixels

    if not _task_marked(ctx, task_id):
        return chain
    return Chain([*chain.processors, Watermarker(task_id)])


def gate_of_marked(ctx: JobContext, task_id: str, gate: Measures) -> Measures:
    """``gate`` for the task: for a marked one, the output outside the faces is compared with
    the input as marked, since the mark is meant to be there (against the unmarked input, the
    mark alone took ~2 dB off an anonymised clip's PSNR and failed the gate's 30 dB floor)."""
    if not _task_marked(ctx, task_id):
        return gate
    from pipeline.watermark import Watermarker

    return _AgainstMarked(gate, Watermarker(task_id))


class _AgainstMarked:
    def __init__(self, gate: Measures, marker: Watermarker) -> None:
        self._gate, self._marker = gate, marker
        self.reverse = gate.reverse

    def measure(self, before: np.ndarray, after: np.ndarray) -> Figures:
        return self._gate.measure(self._marker.mark_image(before), after)
