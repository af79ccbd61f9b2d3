"""The reaper's pruning of the outbox, on the real PostgreSQL: events delivered or given up
longer ago than the retention go, with their attempts; recent ones and pending ones (however
old) stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from facefleet.events.retention import prune_events
from facefleet.records.db import utcnow
from facefleet.records.event_tables import WebhookAttempt, WebhookEvent


def _event(session, ended_days_ago: float | None, *, gave_up: bool = False) -> str:  # type: ignore[no-untyped-def]
    now = utcnow()
    created = now - timedelta(days=(ended_days_ago or 40) + 1)
    ended = None if ended_days_ago is None else now - timedelta(days=ended_days_ago)
    event = WebhookEvent(
        tenant="default",
        event="succeeded",
        url="http://127.0.0.1:1/hook",
        payload={"type": "task.succeeded"},
        created_at=created,
        next_attempt_at=now if ended is None else None,
        retry_until=created + timedelta(days=1),
        attempts=1,
        delivered_at=None if gave_up else ended,
        gave_up_at=ended if gave_up else None,
    )
    session.add(event)
    session.flush()
    session.add(WebhookAttempt(event_id=event.id, at=created, status=200, latency_ms=1.0))
    return event.id


def test_delivered_and_given_up_events_are_pruned_after_the_retention(services):
    with services.sessions.begin() as session:
        old_delivered = _event(session, 31)
        old_given_up = _event(session, 31, gave_up=True)
        recent = _event(session, 29)
        pending = _event(session, None)  # 41 days old, never delivered: kept until it ends

    assert prune_events(services.sessions, keep_days=30) >= 2

    with services.sessions() as session:
        left = set(session.scalars(select(WebhookEvent.id)))
        attempts_left = session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_([old_delivered, old_given_up]))
        )
    assert old_delivered not in left and old_given_up not in left
    assert attempts_left == 0
    assert {recent, pending} <= left
    assert prune_events(services.sessions, keep_days=30) == 0  # nothing more to do
