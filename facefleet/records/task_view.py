"""A task as users see it (``GET /v1/tasks/<id>``'s summary fields, the listing's items, and
the ``data`` of a task's webhook events): one function, so the three never disagree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from facefleet.records.db import Task
from pipeline.output_size import output_view

SUMMARY_COLUMNS = (
    Task.id,
    Task.tenant,
    Task.state,
    Task.target_name,
    Task.options,
    Task.frames_total,
    Task.chunks_total,
    Task.error,
    Task.reason,
    Task.attempts,
    Task.batch_id,
    Task.created_at,
    Task.updated_at,
    Task.started_at,
    Task.finished_at,
    Task.output_expired_at,
    Task.provenance,
    Task.content_policy,
    Task.probe,
)


def task_summary(task: Any) -> dict[str, Any]:
    """A task's summary, from its row (an ORM object or a row of SUMMARY_COLUMNS)."""
    return {
        "id": task.id,
        "tenant": task.tenant,
        "state": task.state.value,
        "target_name": task.target_name,
        "options": task.options,
        "frames_total": task.frames_total,
        "chunks_total": task.chunks_total,
        "error": task.error,
        "reason": task.reason,
        "retries": task.attempts,
        "batch_id": task.batch_id,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "output_expired_at": iso(task.output_expired_at),
        "provenance": task.provenance or {},
        # the content policy's verdict (null: the policy was off): flagged, score, samples
        "content_policy": task.content_policy,
        # the output's size once the input is probed; padded: why it is coded one pixel larger
        "output": output_view(task.probe, task.options),
    }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
