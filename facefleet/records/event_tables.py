"""Tables of batches and of the webhook outbox (SQLAlchemy 2, the same ``Base`` as
``facefleet.records.db``; whoever needs the whole metadata, the embedded schema and Alembic, imports this too).

* ``batches``: a batch only groups submissions (its items are ordinary tasks with
  ``tasks.batch_id``); it keeps the options it was given and when its last item ended.
* ``webhook_events``: the outbox. A row is written in the same transaction as the state
  change that causes it; its id is the ``webhook-id`` the receiver sees on every attempt.
  ``next_attempt_at`` says when it is due (NULL once delivered or given up).
* ``webhook_attempts``: every attempt, with its time, HTTP status, latency and error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from facefleet.records.db import Base, UTCDateTime, new_id, utcnow


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), default="default")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # when its last item was received: until then no item's end completes it
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # when its last item ended (batch_completed was written); cleared by a retry
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_batches_tenant_created", "tenant", "created_at", "id"),)


def new_event_id() -> str:
    return f"msg_{new_id()}"


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_event_id)
    tenant: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(32), index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True)
    event: Mapped[str] = mapped_column(String(32))  # started, progress, ..., batch_completed
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retry_until: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # what the deliverer looks for: the due rows, oldest first
        Index(
            "ix_webhook_events_due", "next_attempt_at", postgresql_where=text("next_attempt_at IS NOT NULL")
        ),
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status, if it answered
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)  # None: delivered
