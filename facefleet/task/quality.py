"""The quality gate around a task: figures per stored segment (on the chunk's row), the task's
summary at its stitch (on the task's row, with its metrics and log line), and the same
summary over any set of tasks (a batch).

A segment's figures are written by the chunk's lease holder after the segment is stored and
before the checkpoint that names it, so every checkpointed segment has its figures, and a
segment done again (a resumed chunk) writes the same figures over them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from facefleet.config.context import JobContext
from facefleet.config.options import JobOptions
from facefleet.observability import metrics
from facefleet.records.db import Chunk, Task
from pipeline.quality import Figures, Thresholds, summarise, total

log = logging.getLogger(__name__)


def chunk_figures(quality: dict[str, Any] | None) -> Figures:
    """A chunk's figures: the sum of its segments'."""
    segments = (quality or {}).get("segments", {})
    return total(Figures.from_json(segments[key]) for key in sorted(segments, key=int))


def task_figures(ctx: JobContext, task_id: str) -> Figures:
    with ctx.read_sessions() as session:
        rows = session.scalars(select(Chunk.quality).where(Chunk.task_id == task_id).order_by(Chunk.index))
        return total(chunk_figures(quality) for quality in rows)


def report(quality: dict[str, Any] | None, thresholds: Thresholds) -> dict[str, Any] | None:
    """The reported ``quality`` of a task from its stored figures (None: not measured)."""
    if not quality:
        return None
    figures = Figures.from_json(quality)
    if figures.samples == 0:
        return None
    return summarise(figures, thresholds)


def batch_quality(ctx: JobContext, task_ids: Iterable[str]) -> dict[str, Any] | None:
    """The quality of a set of tasks (a batch) summarised as one: every sampled frame of
    every measured task counts once, so the mean, p05 and min are over all their faces."""
    ids = list(task_ids)
    if not ids:
        return None
    with ctx.read_sessions() as session:
        stored = session.scalars(select(Task.quality).where(Task.id.in_(ids), Task.quality.is_not(None)))
        # a row written before none_as_null holds JSON null, which IS NOT NULL lets through
        figures = total(Figures.from_json(quality) for quality in stored if quality)
    if figures.samples == 0:
        return None
    return summarise(figures, ctx.quality_thresholds)


def conclude(ctx: JobContext, task_id: str) -> dict[str, Any] | None:
    """The task's figures, summed from its chunks, for its row at the stitch (None: none)."""
    figures = task_figures(ctx, task_id)
    if figures.samples == 0:
        return None
    return figures.to_json()


def announce(
    task_id: str, tenant: str, options: JobOptions, quality: dict[str, Any] | None, thresholds: Thresholds
) -> None:
    """Once the task's success holds: its figures to the metrics, and a line when it failed the gate."""
    summary = report(quality, thresholds)
    if summary is None or quality is None:
        return
    model = options.swapper_model if "face_swapper" in options.processors else "none"
    similarity = metrics.QUALITY_ID_SIMILARITY.labels(tenant=tenant, model=model)
    for value in Figures.from_json(quality).similarities:
        similarity.observe(value)
    processor = metrics.processor_label(options.processors)
    if summary["passed"]:
        log.info("task %s passed the quality gate", task_id, extra={"quality": summary})
        return
    metrics.QUALITY_FAILED.labels(tenant=tenant, processor=processor).inc()
    log.warning(
        "task %s failed the quality gate: %s",
        task_id,
        "; ".join(summary["reasons"]),
        extra={"quality": summary},
    )
