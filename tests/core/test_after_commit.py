"""A task's end is measured and logged only once its change has committed: a transaction
that rolls back leaves the turnaround histogram and the log as they were."""

from __future__ import annotations

import logging

import pytest

from facefleet.config.options import JobOptions
from facefleet.config.settings import Settings
from facefleet.modes.embedded import open_context
from facefleet.observability import metrics
from facefleet.records.states import TaskState
from facefleet.task.jobs import create_task, move_task


def _failed_count() -> float:
    for family in metrics.TASK_TURNAROUND.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels.get("outcome") == "failed":
                return float(sample.value)
    return 0.0


def test_a_rolled_back_end_is_neither_counted_nor_logged(tmp_path, caplog: pytest.LogCaptureFixture):
    ctx = open_context(Settings(home=tmp_path / "home"))
    task = create_task(ctx, target_key="in.mp4", source_keys=[], options=JobOptions())
    before = _failed_count()
    caplog.set_level(logging.INFO, logger="facefleet.task.jobs")

    with ctx.sessions() as session:
        assert move_task(session, task.id, TaskState.FAILED, error="boom")
        session.rollback()
    assert _failed_count() == before
    assert not [r for r in caplog.records if r.getMessage() == f"task {task.id}: failed"]

    with ctx.sessions.begin() as session:
        assert move_task(session, task.id, TaskState.FAILED, error="boom")
    assert _failed_count() == before + 1
    assert [r for r in caplog.records if r.getMessage() == f"task {task.id}: failed"]
