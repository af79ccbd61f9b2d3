"""The watermark's place in a task: decided when the task is written (``Task.provenance``),
so that every chunk, resumed or retried, marks or does not as the first attempt did."""

from __future__ import annotations

from typing import Any

from facefleet.config.context import JobContext
from facefleet.records.db import Task
from pipeline.processors import Chain


def marked_task(provenance: dict[str, Any] | None) -> bool:
    """Whether a task's frames are marked, from its ``provenance``."""
    return bool((provenance or {}).get("watermark"))


def with_watermark(ctx: JobContext, task_id: str, chain: Chain) -> Chain:
    """``chain`` with the watermark as its last processor when the task is marked (never for
    the empty chain: a ``--processors none`` job re-encodes frames it did not change)."""
    if chain.empty:
        return chain
    from pipeline.watermark import Watermarker  # numpy and scipy: only for chains that touch pixels

    with ctx.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or not marked_task(task.provenance):
            return chain
    return Chain([*chain.processors, Watermarker(task_id)])
