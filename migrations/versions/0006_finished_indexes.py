"""Indexes on when tasks and chunks ended, for the service-level figures of a window
(GET /v1/stats, facefleet sla).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_tasks_finished', 'tasks', ['finished_at'], unique=False)
    op.create_index('ix_chunks_finished', 'chunks', ['finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_chunks_finished', table_name='chunks')
    op.drop_index('ix_tasks_finished', table_name='tasks')
