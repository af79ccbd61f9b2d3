"""Pruning the outbox: an event delivered or given up is kept (with its attempts, for
``GET .../webhooks`` and replay) for FACEFLEET_WEBHOOK_KEEP_DAYS after it ended, then the
reaper deletes it. A pending event is never pruned, however old."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import sessionmaker

from facefleet.records.db import utcnow
from facefleet.records.event_tables import WebhookAttempt, WebhookEvent

PRUNE_BATCH = 1000  # rows per transaction: a long backlog is pruned over several passes


def prune_events(sessions: sessionmaker, keep_days: float, batches: int = 10) -> int:
    """Delete the events that ended more than ``keep_days`` ago, and their attempts; returns
    how many events were deleted (at most ``batches`` x PRUNE_BATCH per call)."""
    cutoff = utcnow() - timedelta(days=keep_days)
    ended = func.coalesce(WebhookEvent.delivered_at, WebhookEvent.gave_up_at)
    pruned = 0
    for _ in range(batches):
        with sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(WebhookEvent.id)
                    .where(WebhookEvent.next_attempt_at.is_(None), ended < cutoff)
                    .limit(PRUNE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                break
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.event_id.in_(ids)))
            session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        pruned += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    return pruned
