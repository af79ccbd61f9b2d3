"""Webhooks never in a job's way, and ``progress`` at most once per interval: a receiver
that sleeps 30 s per request leaves the job's time within 10 % of the same job without a
webhook (each attempt runs in the deliverer's own threads, cut off by its timeout), and the
progress events of a job that spans many intervals are never closer than the interval."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tests.harness.net import wait_for
from tests.harness.receivers import Receiver
from tests.harness.tasks import JOB, clip
from tests.harness.webhooks import PROGRESS_EVERY_S, get, submit_task
from tests.harness.webhooks import deliveries as webhook_deliveries

FRAMES = 240  # 5 chunks of 48 (the stamped clip holds at most 256 frames): a job of several seconds, spanning several progress intervals


def _run(api: dict[str, Any], target: Path, options: dict[str, Any]) -> tuple[str, float]:
    task_id = submit_task(api, target, options)
    task = wait_for(
        lambda: (t := get(api, f"/v1/tasks/{task_id}"))["state"] in ("succeeded", "failed") and t,
        180,
        "the job's end",
        interval=0.5,
    )
    assert task["state"] == "succeeded", task
    took = datetime.fromisoformat(task["finished_at"]) - datetime.fromisoformat(task["started_at"])
    return task_id, took.total_seconds()


def test_a_receiver_sleeping_30_s_does_not_slow_the_job_and_progress_keeps_its_interval(hooks, tmp_path):
    target = clip(tmp_path / "long.mp4", frames=FRAMES)
    receiver = Receiver(secrets=[hooks["secret"]], delay_s=30)
    try:
        _run(hooks, target, JOB)  # warm: the first job of a fleet pays for its workers' first decodes
        events = ["started", "progress", "succeeded"]
        hooked_options = {**JOB, "webhook_url": receiver.url, "webhook_events": events}
        # alternated, best of three each: a busy machine slows one job now and then, never
        # every one of three; a webhook in the job's way would slow all three
        plain_runs, hooked_runs = [], []
        for _ in range(3):
            plain_runs.append(_run(hooks, target, JOB)[1])
            task_id, took = _run(hooks, target, hooked_options)
            hooked_runs.append(took)
        plain, hooked = min(plain_runs), min(hooked_runs)
        print(f"job time: {plain_runs} s without a webhook, {hooked_runs} s with a receiver sleeping 30 s")
        assert receiver.arrived.is_set()  # the slow receiver was called while the job ran
        assert hooked <= plain * 1.10, (plain, hooked)

        deliveries = webhook_deliveries(hooks, f"/v1/tasks/{task_id}/webhooks")
        timed_out = [a for d in deliveries for a in d["attempts"] if a.get("error")]
        assert timed_out, deliveries  # the attempts were cut off, not waited out
        progress = sorted(
            datetime.fromisoformat(d["created_at"]) for d in deliveries if d["event"] == "progress"
        )
        gaps = [(b - a).total_seconds() for a, b in zip(progress, progress[1:], strict=False)]
        assert len(progress) >= 3, progress  # the job spanned several intervals
        assert all(gap >= PROGRESS_EVERY_S for gap in gaps), gaps
        assert len(progress) <= took / PROGRESS_EVERY_S + 1  # took: the job the deliveries are of
    finally:
        receiver.stop()
