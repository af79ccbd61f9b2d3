"""Since when a task's planning or stitching attempt meets unavailable services: its patience
is measured from that attempt, not from when its chunks finished.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('infra_failing_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('tasks', 'infra_failing_since')
