"""Dispatch from PostgreSQL: queued chunks wait in the chunks table until released to the
broker (by priority, fair share between tenants, then age); task deadlines and queue expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('served_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('reason', sa.String(length=32), nullable=True))
    op.add_column('tasks', sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('queue_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        'ix_tasks_deadlines', 'tasks', ['state'], unique=False,
        postgresql_where=sa.text('deadline_at IS NOT NULL OR queue_expires_at IS NOT NULL'),
    )
    op.add_column('chunks', sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('chunks', sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))
    op.add_column('chunks', sa.Column('priority', sa.Integer(), server_default='5', nullable=False))
    op.add_column('chunks', sa.Column('tenant', sa.String(length=64), server_default='default', nullable=False))
    op.add_column('chunks', sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True))
    # chunks queued before this revision were all sent to the broker at planning time
    op.execute(
        "UPDATE chunks SET priority = tasks.priority, tenant = tasks.tenant, submitted_at = tasks.created_at,"
        " released_at = CASE WHEN chunks.state = 'queued' THEN now() END"
        " FROM tasks WHERE tasks.id = chunks.task_id"
    )
    op.create_index(
        'ix_chunks_waiting', 'chunks', ['tenant', sa.text('priority DESC'), 'submitted_at', 'task_id', 'index'],
        unique=False, postgresql_where=sa.text("state = 'queued' AND released_at IS NULL"),
    )
    op.create_index(
        'ix_chunks_active', 'chunks', ['tenant'], unique=False,
        postgresql_where=sa.text("state = 'running' OR (state = 'queued' AND released_at IS NOT NULL)"),
    )


def downgrade() -> None:
    op.drop_index('ix_chunks_active', table_name='chunks')
    op.drop_index('ix_chunks_waiting', table_name='chunks')
    for column in ('submitted_at', 'tenant', 'priority', 'not_before', 'released_at'):
        op.drop_column('chunks', column)
    op.drop_index('ix_tasks_deadlines', table_name='tasks')
    for column in ('queue_expires_at', 'deadline_at', 'reason'):
        op.drop_column('tasks', column)
    op.drop_column('tenants', 'served_at')
