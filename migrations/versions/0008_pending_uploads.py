"""Pending uploads (a submission's inputs stored before its row exists, so the reaper can
remove what a killed API left) and the frames of a chunk counted in usage so far.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'pending_uploads',
        sa.Column('task_id', sa.String(length=32), nullable=False),
        sa.Column('prefix', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('task_id'),
    )
    op.create_index('ix_pending_uploads_created_at', 'pending_uploads', ['created_at'], unique=False)
    op.add_column('chunks', sa.Column('frames_accounted', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('chunks', 'frames_accounted')
    op.drop_index('ix_pending_uploads_created_at', table_name='pending_uploads')
    op.drop_table('pending_uploads')
