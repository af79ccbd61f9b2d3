"""Clean-up and retention columns, the stopped chunk state, usage per tenant and month.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():  # a new enum value cannot be added inside a transaction
        op.execute("ALTER TYPE chunk_state ADD VALUE IF NOT EXISTS 'stopped'")
    op.add_column('tasks', sa.Column('cleanup', sa.String(length=16), nullable=True))
    op.add_column('tasks', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('output_expired_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('inputs_expired_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_tasks_cleanup', 'tasks', ['cleanup'], unique=False,
                    postgresql_where=sa.text('cleanup IS NOT NULL'))
    op.create_table('usage',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('tasks', sa.BigInteger(), nullable=False),
    sa.Column('frames', sa.BigInteger(), nullable=False),
    sa.Column('worker_seconds', sa.Float(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'month')
    )
    # what existing tasks used, by the month they were created in
    op.execute(
        "INSERT INTO usage (tenant, month, tasks, frames, worker_seconds, bytes_in, bytes_out) "
        "SELECT 'default', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM'), count(*), "
        "coalesce(sum(frames_processed), 0), coalesce(sum(worker_seconds), 0), "
        "coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0) FROM tasks GROUP BY 2"
    )


def downgrade() -> None:
    op.drop_table('usage')
    op.drop_index('ix_tasks_cleanup', table_name='tasks')
    op.drop_column('tasks', 'inputs_expired_at')
    op.drop_column('tasks', 'output_expired_at')
    op.drop_column('tasks', 'deleted_at')
    op.drop_column('tasks', 'cleanup')
    # PostgreSQL cannot drop an enum value: chunks in 'stopped' become 'failed', the value stays
    op.execute("UPDATE chunks SET state = 'failed' WHERE state = 'stopped'")
