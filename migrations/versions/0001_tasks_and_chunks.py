"""Tasks and chunks.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 15:11:57.702455
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.Enum('queued', 'planning', 'running', 'stitching', 'succeeded', 'failed', 'cancelled', name='task_state'), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('target_key', sa.String(length=500), nullable=False),
    sa.Column('target_name', sa.String(length=500), nullable=True),
    sa.Column('source_keys', sa.JSON(), nullable=False),
    sa.Column('reference_key', sa.String(length=500), nullable=True),
    sa.Column('output_key', sa.String(length=500), nullable=True),
    sa.Column('probe', sa.JSON(), nullable=True),
    sa.Column('frame_start', sa.Integer(), nullable=True),
    sa.Column('frame_end', sa.Integer(), nullable=True),
    sa.Column('frames_total', sa.Integer(), nullable=True),
    sa.Column('chunks_total', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('frames_processed', sa.BigInteger(), nullable=False),
    sa.Column('worker_seconds', sa.Float(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index('ix_tasks_created', 'tasks', ['created_at', 'id'], unique=False)
    op.create_index(op.f('ix_tasks_state'), 'tasks', ['state'], unique=False)
    op.create_table('chunks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.String(length=32), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('frame_start', sa.Integer(), nullable=False),
    sa.Column('frame_end', sa.Integer(), nullable=False),
    sa.Column('segments_total', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='chunk_state'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('frames_done', sa.Integer(), nullable=False),
    sa.Column('segments_done', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'index', name='uq_chunks_task_index')
    )
    op.create_index(op.f('ix_chunks_state'), 'chunks', ['state'], unique=False)
    op.create_index(op.f('ix_chunks_task_id'), 'chunks', ['task_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_chunks_task_id'), table_name='chunks')
    op.drop_index(op.f('ix_chunks_state'), table_name='chunks')
    op.drop_table('chunks')
    op.drop_index(op.f('ix_tasks_state'), table_name='tasks')
    op.drop_index('ix_tasks_created', table_name='tasks')
    op.drop_table('tasks')
    sa.Enum(name='chunk_state').drop(op.get_bind(), checkfirst=True)
    sa.Enum(name='task_state').drop(op.get_bind(), checkfirst=True)
