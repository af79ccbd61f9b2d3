"""Batches and the webhook outbox: the batches table, tasks.batch_id and
tasks.progress_event_at, webhook_events (the outbox) and webhook_attempts (the delivery log),
the tenant's previous webhook secret (rotation); existing secrets re-encoded from URL-safe to
standard base64 (the same key bytes, as the Standard Webhooks spec writes them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00
"""

import base64
import binascii
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from facefleet.records.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_batches_tenant_created", "batches", ["tenant", "created_at", "id"])
    op.add_column("tasks", sa.Column("batch_id", sa.String(length=32), nullable=True))
    op.add_column("tasks", sa.Column("progress_event_at", UTCDateTime(), nullable=True))
    op.create_index("ix_tasks_batch_id", "tasks", ["batch_id"])
    op.add_column("tenants", sa.Column("webhook_secret_previous", sa.String(length=100), nullable=True))
    op.add_column("tenants", sa.Column("webhook_secret_previous_until", UTCDateTime(), nullable=True))
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("retry_until", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("gave_up_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_events_task_id", "webhook_events", ["task_id"])
    op.create_index("ix_webhook_events_batch_id", "webhook_events", ["batch_id"])
    op.create_index(
        "ix_webhook_events_due",
        "webhook_events",
        ["next_attempt_at"],
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempts_event_id", "webhook_attempts", ["event_id"])
    _reencode_secrets(base64.urlsafe_b64decode, base64.b64encode)


def downgrade() -> None:
    _reencode_secrets(base64.b64decode, base64.urlsafe_b64encode)
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_events")
    op.drop_column("tenants", "webhook_secret_previous_until")
    op.drop_column("tenants", "webhook_secret_previous")
    op.drop_index("ix_tasks_batch_id", table_name="tasks")
    op.drop_column("tasks", "progress_event_at")
    op.drop_column("tasks", "batch_id")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_table("batches")


def _reencode_secrets(decode, encode) -> None:  # type: ignore[no-untyped-def]
    """Each tenant's ``whsec_`` secret written in the other base64 alphabet (same key bytes)."""
    conn = op.get_bind()
    for name, secret in conn.execute(sa.text("SELECT name, webhook_secret FROM tenants")).all():
        body = secret.removeprefix("whsec_")
        try:
            key = decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):  # not a secret we made: left as it is
            continue
        conn.execute(
            sa.text("UPDATE tenants SET webhook_secret = :secret WHERE name = :name"),
            {"secret": "whsec_" + encode(key).decode(), "name": name},
        )
